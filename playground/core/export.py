"""Exporting logged exchanges as one text: JSONL records, a Markdown transcript, SFT or DPO data.

The record shapes live in `sessions` (`export_jsonl`, `export_markdown`, `export_sft`,
`export_preferences`); this module picks the exchanges and joins the records into the file's text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from playground.core import sessions as S
from playground.core.db import ExchangeRow, Row, SessionLog

FORMATS = ("jsonl", "markdown", "sft", "preferences")


def select(
    log: SessionLog,
    sess: Row | None,
    fmt: str,
    model: str | None = None,
    tag: str | None = None,
) -> list[ExchangeRow]:
    """The exchanges to export: one session's (every session's with None), in order.

    Transcripts and SFT data keep only the latest answer of a regenerated one; `model` keeps those
    whose model id contains it, `tag` those with a tag of that label.
    """
    rows = S.exchanges(log, sess["id"] if sess else None, latest_only=fmt in ("markdown", "sft"))
    if model:
        rows = [r for r in rows if model in (r["model_id"] or "")]
    if tag:
        rows = [r for r in rows if any(t["label"] == tag for t in log.tags(r["id"]))]
    return rows


def export_text(
    log: SessionLog,
    sess: Row | None,
    fmt: str,
    model: str | None = None,
    tag: str | None = None,
) -> str:
    """The exported file's text in format `fmt` (one of FORMATS); Markdown is one part a session."""
    rows = select(log, sess, fmt, model, tag)
    if fmt == "markdown":
        if sess is not None:
            return S.export_markdown(log, sess, rows)
        return "\n\n".join(
            S.export_markdown(log, S.session(log, sid), [r for r in rows if r["session_id"] == sid])
            for sid in dict.fromkeys(r["session_id"] for r in rows)
        )
    records: Sequence[object]
    if fmt == "jsonl":
        records = S.export_jsonl(log, rows)
    elif fmt == "sft":
        records = S.export_sft(log, rows)
    elif fmt == "preferences":
        records = S.export_preferences(log, sess["id"] if sess else None)
    else:
        raise KeyError(fmt)
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
