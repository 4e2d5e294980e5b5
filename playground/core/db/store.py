"""The session database: one connection per process, WAL mode, write transactions, typed rows.

An exchange row is written before generation starts and updated while it streams (see
recorder.py), so a crash leaves the partial answer; the next open marks rows of dead processes
`interrupted`. Nothing outside playground.core.db opens a transaction or writes SQL: the queries
other modules need are functions in queries.py.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, cast

import psutil
import sqlite_utils

from playground.core.db import migrations
from playground.core.errors import PlaygroundError
from playground.core.events import (
    NO_TOKEN,
    SERVER_TOKEN,
    Alternative,
    ExchangeStatus,
    FinishReason,
    Token,
)

LABELS = ("correct", "hallucination", "abstained", "partial")
STATUSES: tuple[ExchangeStatus, ...] = (
    "pending",
    "streaming",
    "complete",
    "cancelled",
    "error",
    "interrupted",
)
BUSY_TIMEOUT_S = 30.0


def busy_timeout_s() -> float:
    """How long to wait for another process's write lock: BUSY_TIMEOUT_S, or
    $PLAYGROUND_BUSY_TIMEOUT_S (seconds) where that is a number from 0 up."""
    with contextlib.suppress(ValueError):
        wait = float(os.environ.get("PLAYGROUND_BUSY_TIMEOUT_S", ""))
        if 0 <= wait < 1e6:
            return wait
    return BUSY_TIMEOUT_S


Row = dict[str, Any]
"""A row as SQLite returns it, column name to value: for the open-ended query results."""


class LogError(PlaygroundError):
    pass


class ExchangeRow(TypedDict, total=False):
    """A row of `exchanges` (migrations.py has every column; JSON columns are text)."""

    id: int
    session_id: str
    turn: int
    lane_index: int
    lane: str
    parent_id: int | None
    model_id: str
    model_kind: str | None
    model_family: str | None
    model_path: str | None
    model_sha256: str | None
    model_info: str | None  # JSON
    mode: str
    abstain_t: float | None
    options: str | None  # JSON
    temperature: float | None
    top_p: float | None
    top_k: int | None
    seed: int | None
    max_tokens: int | None
    stop: str | None  # JSON list
    n_ctx: int | None
    n_threads: int | None
    n_gpu_layers: int | None
    question: str
    prompt_text: str | None
    prompt_token_ids: str | None  # JSON list
    prompt_special: str | None  # JSON list of 0/1
    output_text: str | None
    finish_reason: FinishReason | None
    status: ExchangeStatus
    error: str | None
    load_seconds: float | None
    time_to_first_token: float | None
    tokens_per_second: float | None
    total_seconds: float | None
    prompt_tokens: int | None
    prompt_evaluated: int | None
    prompt_reused: int | None
    completion_tokens: int | None
    answer_tokens: int | None
    mean_logprob: float | None
    confidence: float | None
    dropped_turns: int | None
    searches: int | None
    pid: int | None
    proc_started: float | None
    host: str | None
    created_at: str
    updated_at: str


class TokenFields(TypedDict):
    """A row of `tokens` without its exchange: one generated token. A server's token has no id
    (NULL), a server may send no probability (NULL); text released without a token has no row."""

    position: int
    token_id: int | None
    text: str
    logprob: float | None
    top: str  # JSON list of [token_id, text, logprob]
    elapsed: float


class TokenRow(TokenFields):
    """A row of `tokens`."""

    exchange_id: int


def exchange_row(row: Row) -> ExchangeRow:
    """A row read from `exchanges` as the typed row it is (SQLite returns plain dicts)."""
    return cast(ExchangeRow, row)


def token_row(ev: Token) -> TokenFields | None:
    """The row a Token event is logged as (None for text released without a token)."""
    if ev.token_id == NO_TOKEN:
        return None
    return {
        "position": ev.index,
        "token_id": ev.token_id if ev.token_id >= 0 else None,
        "text": ev.piece,
        "logprob": ev.logprob if ev.logprob == ev.logprob else None,  # NaN: not sent
        "top": json.dumps([[a.token_id, a.text, a.logprob] for a in ev.top]),
        "elapsed": round(ev.elapsed, 4),
    }


def token_event(row: TokenRow, lane: str, text: str) -> Token:
    """A logged token as the Token event it was (*text*: what it added to the visible answer)."""
    top = [Alternative(a[0], a[1], a[2]) for a in json.loads(row["top"] or "[]")]
    return Token(
        lane,
        row["position"],
        row["token_id"] if row["token_id"] is not None else SERVER_TOKEN,
        row["text"] or "",
        text,
        row["logprob"] if row["logprob"] is not None else math.nan,
        top,
        row["elapsed"] or 0.0,
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _proc_started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def default_tagger() -> str:
    if env := os.environ.get("PLAYGROUND_TAGGER"):
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class SessionLog:
    """One process's connection to the session database. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str], read_only: bool = False):
        self.path = Path(path).expanduser()
        self.read_only = read_only  # open with mode=ro: a file or folder this user cannot write
        self._lock = threading.RLock()
        self.pid = os.getpid()
        self.proc_started = _proc_started(self.pid) or time.time()
        self.host = socket.gethostname()
        self.backup: Path | None = None  # the copy made before migrating an older database
        self.db = self._open_read_only() if read_only else self._open()
        self.interrupted_on_open = 0 if read_only else self._recover()

    # -- opening -------------------------------------------------------------------------
    def _open(self) -> sqlite_utils.Database:
        p = self.path
        if p.is_dir():
            raise LogError(f"the session database path {p} is a directory; give a file path")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LogError(
                f"cannot create the folder for the session database {p}: {e.strerror}"
            ) from e
        if p.exists() and not os.access(p, os.W_OK):
            raise LogError(f"the session database {p} is not writable (permission denied)")
        if not p.exists() and not os.access(p.parent, os.W_OK):
            raise LogError(
                f"cannot create the session database {p}: the folder {p.parent} is not writable"
            )
        if p.exists() and p.stat().st_size > 0:
            with p.open("rb") as fh:
                head = fh.read(16)
            if head != b"SQLite format 3\x00":
                raise LogError(
                    f"{p} is not a SQLite database (or its header is damaged); it was left "
                    "untouched: move it away or choose another file with --db"
                )
        try:
            conn = sqlite3.connect(
                str(p), timeout=busy_timeout_s(), check_same_thread=False, isolation_level=None
            )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s() * 1000)}")
            db = sqlite_utils.Database(conn)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise LogError(f"could not switch {p} to WAL mode (journal mode is {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(db)
        except sqlite3.DatabaseError as e:
            msg = str(e)
            if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
                raise LogError(
                    f"{p} is damaged ({msg}); it was left untouched: move it away or choose "
                    "another file with --db"
                ) from e
            if "readonly" in msg or "unable to open" in msg:
                raise LogError(f"cannot write the session database {p}: {msg}") from e
            raise LogError(f"cannot open the session database {p}: {msg}") from e
        return db

    def _open_read_only(self) -> sqlite_utils.Database:
        """Open for reading only. A WAL database needs its -shm file, which a read-only folder
        cannot hold: then open it as immutable (nobody can be writing a file we cannot write)."""
        p = self.path

        def connect(flags: str) -> tuple[sqlite3.Connection, int]:
            conn = sqlite3.connect(
                f"{p.resolve().as_uri()}?{flags}",
                uri=True,
                timeout=busy_timeout_s(),
                check_same_thread=False,
                isolation_level=None,
            )
            try:
                return conn, int(conn.execute("PRAGMA user_version").fetchone()[0])
            except sqlite3.Error:
                conn.close()
                raise

        try:
            try:
                conn, version = connect("mode=ro")
            except sqlite3.OperationalError:
                conn, version = connect("mode=ro&immutable=1")
        except sqlite3.DatabaseError as e:
            raise LogError(f"cannot read the session database {p}: {e}") from e
        if version != migrations.SCHEMA_VERSION:
            raise LogError(
                f"{p} has schema {version} and this version of playground reads schema "
                f"{migrations.SCHEMA_VERSION}; it is read-only here, so it cannot be migrated: "
                "copy it somewhere writable and pass --db"
            )
        return sqlite_utils.Database(conn)

    def _migrate(self, db: sqlite_utils.Database) -> None:
        version = db.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > migrations.SCHEMA_VERSION:
            raise LogError(
                f"{self.path} was written by a newer version of playground (schema {version}; "
                f"this version knows up to {migrations.SCHEMA_VERSION}); it was left untouched: upgrade "
                "playground or use another file with --db"
            )
        if version == migrations.SCHEMA_VERSION:
            return
        if version > 0:
            self.backup = self._backup(db, version)
        try:
            with self.transaction(db):
                version = db.conn.execute("PRAGMA user_version").fetchone()[0]
                migrations.apply(db, version, now_iso())
        except (sqlite_utils.db.AlterError, sqlite3.OperationalError) as e:
            if "locked" in str(e) or "busy" in str(e):
                raise
            raise LogError(
                f"{self.path} is not a playground session log that can be updated ({e}); "
                "it was left untouched: use another file with --db"
            ) from e

    @contextlib.contextmanager
    def transaction(
        self, db: sqlite_utils.Database | None = None
    ) -> Iterator[sqlite_utils.Database]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE, waiting on
        busy_timeout); rolled back if the block raises."""
        db = db or self.db
        if self.read_only:
            raise LogError(f"{self.path} is open read-only (this user cannot write it)")
        with self._lock:
            db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.conn.execute("ROLLBACK")
                raise
            else:
                db.conn.execute("COMMIT")

    def _backup(self, db: sqlite_utils.Database, version: int) -> Path:
        """A consistent copy of an older database, made before it is migrated."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        dest = self.path.with_name(
            f"{self.path.stem}.schema{version}-{stamp}.bak{self.path.suffix}"
        )
        target = sqlite3.connect(str(dest))
        try:
            db.conn.backup(target)
        finally:
            target.close()
        return dest

    def _recover(self) -> int:
        """Rows still pending/streaming from a process that is gone become 'interrupted'."""
        rows = list(
            self.db.query(
                "select id, pid, proc_started, host from exchanges where status in ('pending', 'streaming')"
            )
        )
        dead = []
        for r in rows:
            if r["host"] != self.host:
                continue
            if r["pid"] == self.pid and r["proc_started"] == self.proc_started:
                continue
            started = _proc_started(r["pid"]) if r["pid"] else None
            if started is None or abs(started - (r["proc_started"] or 0)) > 1.0:
                dead.append(r["id"])
        if dead:
            with self.transaction() as db:
                for i in dead:
                    db.conn.execute(
                        "update exchanges set status = 'interrupted', updated_at = ? where id = ? "
                        "and status in ('pending', 'streaming')",
                        (now_iso(), i),
                    )
        return len(dead)

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[Row]:
        """Rows of a read query, as dicts (for the query functions of this package)."""
        with self._lock:
            return list(self.db.query(sql, params))

    def insert(self, table: str, row: Row) -> int:
        """Insert one row in its own transaction; returns its id."""
        with self.transaction() as db:
            db.table(table).insert(row)
            return int(db.conn.execute("select last_insert_rowid()").fetchone()[0])

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self.db.conn.close()

    # -- writing -------------------------------------------------------------------------
    def new_session(
        self, lanes: list[str], title: str | None = None, parent_id: str | None = None
    ) -> str:
        from playground import __version__

        sid = uuid.uuid4().hex[:12]
        with self.transaction() as db:
            db.table("sessions").insert(
                {
                    "id": sid,
                    "created_at": now_iso(),
                    "lanes": json.dumps(lanes),
                    "title": title,
                    "parent_id": parent_id,
                    "app_version": __version__,
                    "host": self.host,
                    "user": default_tagger(),
                }
            )
        return sid

    def start_exchange(self, **fields: Any) -> int:
        row = {
            **fields,
            "status": "pending",
            "pid": self.pid,
            "proc_started": self.proc_started,
            "host": self.host,
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
        for key in ("stop", "model_info", "options", "prompt_token_ids", "prompt_special"):
            if key in row and not isinstance(row[key], str | None):
                row[key] = json.dumps(row[key])
        with self.transaction() as db:
            db.table("exchanges").insert(row)
            return int(db.conn.execute("select last_insert_rowid()").fetchone()[0])

    def update_exchange(
        self, exchange_id: int, tokens: list[TokenFields] | None = None, **fields: Any
    ) -> None:
        fields["updated_at"] = now_iso()
        for key in ("prompt_token_ids", "prompt_special", "options"):
            if key in fields and not isinstance(fields[key], str | None):
                fields[key] = json.dumps(fields[key])
        with self.transaction() as db:
            if tokens:
                db.table("tokens").insert_all(
                    [{"exchange_id": exchange_id, **t} for t in tokens], replace=True
                )
            db.table("exchanges").update(exchange_id, fields)

    def add_tag(
        self, exchange_id: int, label: str, note: str | None = None, tagger: str | None = None
    ) -> int:
        if label not in LABELS:
            raise LogError(f"unknown label {label!r}: use one of {', '.join(LABELS)}")
        self.exchange(exchange_id)
        with self.transaction() as db:
            db.table("tags").insert(
                {
                    "exchange_id": exchange_id,
                    "label": label,
                    "note": note,
                    "tagger": tagger or default_tagger(),
                    "created_at": now_iso(),
                }
            )
            return int(db.conn.execute("select last_insert_rowid()").fetchone()[0])

    def add_search(self, exchange_id: int | None, **fields: Any) -> int:
        if isinstance(fields.get("results"), list):
            fields["results"] = json.dumps(fields["results"])
        with self.transaction() as db:
            db.table("searches").insert(
                {"exchange_id": exchange_id, "created_at": now_iso(), **fields}
            )
            return int(db.conn.execute("select last_insert_rowid()").fetchone()[0])

    def update_search(self, search_id: int, **fields: Any) -> None:
        with self.transaction() as db:
            db.table("searches").update(search_id, fields, alter=True)

    def recorded_search(self, query: str, backend: str) -> str | None:
        """The results JSON of the latest successful search for *query* on *backend*."""
        with self._lock:
            row = self.db.conn.execute(
                "select results from searches where backend = ? and query = ? and error is null "
                "order by id desc limit 1",
                (backend, query),
            ).fetchone()
        results: str | None = row[0] if row else None
        return results

    def searches(self, exchange_id: int) -> list[Row]:
        with self._lock:
            return list(
                self.db.query(
                    "select * from searches where exchange_id = ? order by id", [exchange_id]
                )
            )

    # -- reading -------------------------------------------------------------------------
    def exchange(self, exchange_id: int) -> ExchangeRow:
        with self._lock:
            rows = list(self.db.query("select * from exchanges where id = ?", [exchange_id]))
        if not rows:
            raise LogError(f"no exchange with id {exchange_id} in {self.path}")
        return exchange_row(rows[0])

    def tokens(self, exchange_id: int) -> list[TokenRow]:
        with self._lock:
            rows = list(
                self.db.query(
                    "select * from tokens where exchange_id = ? order by position", [exchange_id]
                )
            )
        return [cast(TokenRow, r) for r in rows]

    def tags(self, exchange_id: int) -> list[Row]:
        with self._lock:
            return list(
                self.db.query("select * from tags where exchange_id = ? order by id", [exchange_id])
            )
