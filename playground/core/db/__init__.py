"""The session database's one public boundary: the store (a connection, transactions, typed rows),
its migrations, the recorder of an answer's event stream, and the queries other modules ask."""

from playground.core.db.recorder import ExchangeRecorder
from playground.core.db.store import (
    LABELS,
    STATUSES,
    ExchangeRow,
    LogError,
    Row,
    SessionLog,
    TokenFields,
    TokenRow,
    default_tagger,
    exchange_row,
    now_iso,
    token_event,
)

__all__ = [
    "LABELS",
    "STATUSES",
    "ExchangeRecorder",
    "ExchangeRow",
    "LogError",
    "Row",
    "SessionLog",
    "TokenFields",
    "TokenRow",
    "default_tagger",
    "exchange_row",
    "now_iso",
    "token_event",
]
