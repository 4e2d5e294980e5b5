"""The schema as an ordered list of migrations; `PRAGMA user_version` says how many are applied.

Plain columns and JSON text only, so Datasette and the `sqlite-utils` CLI read the file as it is.
A migration is appended, never edited: a database written by an older version is copied, then
brought up to date (see store.SessionLog).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils


def _m001_initial(db: sqlite_utils.Database) -> None:
    db.table("sessions").create(
        {
            "id": str,
            "created_at": str,
            "lanes": str,  # JSON list of lane specs
            "title": str,
            "parent_id": str,  # a re-run points to the session it re-ran
            "app_version": str,
            "host": str,
            "user": str,
        },
        pk="id",
    )
    db.table("exchanges").create(
        {
            "id": int,
            "session_id": str,
            "turn": int,
            "lane_index": int,
            "lane": str,
            "parent_id": int,  # a regenerated answer points to the one it replaces
            "model_id": str,
            "model_kind": str,
            "model_family": str,
            "model_path": str,
            "model_sha256": str,
            "model_info": str,  # JSON: architecture, parameters, quantization, ...
            "mode": str,
            "abstain_t": float,
            "options": str,  # JSON: lane options (search, system prompt, ...)
            "temperature": float,
            "top_p": float,
            "top_k": int,
            "seed": int,
            "max_tokens": int,
            "stop": str,  # JSON list
            "n_ctx": int,
            "n_threads": int,
            "n_gpu_layers": int,
            "question": str,
            "prompt_text": str,
            "prompt_token_ids": str,  # JSON list
            "prompt_special": str,  # JSON list of 0/1, one per prompt token
            "output_text": str,
            "finish_reason": str,
            "status": str,
            "error": str,
            "load_seconds": float,
            "time_to_first_token": float,
            "tokens_per_second": float,
            "total_seconds": float,
            "prompt_tokens": int,
            "prompt_evaluated": int,
            "prompt_reused": int,
            "completion_tokens": int,
            "answer_tokens": int,
            "mean_logprob": float,
            "confidence": float,
            "dropped_turns": int,
            "pid": int,
            "proc_started": float,
            "host": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
        defaults={"status": "pending", "dropped_turns": 0},
    )
    db.table("exchanges").create_index(["session_id", "turn"])
    db.table("exchanges").create_index(["status"])
    db.table("tokens").create(
        {
            "exchange_id": int,
            "position": int,
            "token_id": int,
            "text": str,
            "logprob": float,
            "top": str,  # JSON list of [token_id, text, logprob]
            "elapsed": float,  # seconds since the generation started (for replay)
        },
        pk=("exchange_id", "position"),
        foreign_keys=[("exchange_id", "exchanges", "id")],
    )
    db.table("tags").create(
        {
            "id": int,
            "exchange_id": int,
            "label": str,
            "note": str,
            "tagger": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("exchange_id", "exchanges", "id")],
    )
    db.table("tags").create_index(["exchange_id"])


def _m002_searches(db: sqlite_utils.Database) -> None:
    db.table("searches").create(
        {
            "id": int,
            "exchange_id": int,
            "kind": str,  # tool | first | limit | invented | unterminated
            "query": str,
            "backend": str,
            "results": str,  # JSON list of {title, source, text}
            "error": str,
            "seconds": float,
            "position": int,  # characters of the visible answer before the search
            "token_index": int,  # answer tokens generated before the results were injected
            "injected_tokens": int,
            "resume_evaluated": int,  # tokens evaluated when generation resumed after the results
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("exchange_id", "exchanges", "id")],
    )
    db.table("searches").create_index(["exchange_id"])
    db.table("searches").create_index(["backend", "query"])
    db.table("exchanges").add_column("searches", int)


def _m003_probes(db: sqlite_utils.Database) -> None:
    db.table("probe_runs").create(
        {
            "id": int,
            "created_at": str,
            "set_name": str,
            "seed": int,
            "lanes": str,  # JSON list of lane specs
            "samples": int,
            "max_items": int,
            "max_tokens": int,
            "options": str,  # JSON: ptrue, judge, ...
            "session_id": str,
            "status": str,  # running | complete
            "finished_at": str,
        },
        pk="id",
    )
    db.table("probe_items").create(
        {
            "id": int,
            "run_id": int,
            "probe_id": str,
            "question": str,
            "type": str,
            "answers": str,  # JSON list of gold answers and aliases
            "lane": str,
            "sample": int,  # 0 = greedy, 1..K = samples at temperature 1
            "exchange_id": int,
            "text": str,
            "outcome": str,  # correct | incorrect | not_attempted
            "abstained": int,
            "exact_match": int,
            "f1": float,
            "judge": str,  # the judge lane's outcome, if a judge was used
            "conf_sequence": float,
            "conf_normalized": float,
            "conf_first": float,
            "conf_ptrue": float,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("run_id", "probe_runs", "id"), ("exchange_id", "exchanges", "id")],
    )
    db.table("probe_items").create_index(["run_id", "probe_id", "lane", "sample"], unique=True)


def _m004_votes_and_search(db: sqlite_utils.Database) -> None:
    db.table("votes").create(
        {
            "id": int,
            "session_id": str,
            "turn": int,
            "winner_exchange_id": int,  # null for a tie or both bad
            "exchange_ids": str,  # JSON list of the exchanges compared
            "verdict": str,  # better | tie | both_bad
            "blind": int,
            "tagger": str,
            "created_at": str,
        },
        pk="id",
    )
    db.table("votes").create_index(["session_id", "turn"])
    db.execute(
        "create virtual table exchanges_fts using fts5(question, output_text, content='exchanges', content_rowid='id')"
    )
    db.execute(
        "insert into exchanges_fts(rowid, question, output_text) select id, question, output_text from exchanges"
    )
    db.execute(
        """create trigger exchanges_fts_insert after insert on exchanges begin
             insert into exchanges_fts(rowid, question, output_text) values (new.id, new.question, new.output_text);
           end"""
    )
    db.execute(
        """create trigger exchanges_fts_delete after delete on exchanges begin
             insert into exchanges_fts(exchanges_fts, rowid, question, output_text)
             values ('delete', old.id, old.question, old.output_text);
           end"""
    )
    db.execute(
        """create trigger exchanges_fts_update after update of question, output_text on exchanges begin
             insert into exchanges_fts(exchanges_fts, rowid, question, output_text)
             values ('delete', old.id, old.question, old.output_text);
             insert into exchanges_fts(rowid, question, output_text) values (new.id, new.question, new.output_text);
           end"""
    )


def _m005_copied_queries(db: sqlite_utils.Database) -> None:
    # 1: the query appears word for word in a results block injected earlier in the same answer
    # (a document may have chosen it); 0: it does not; null: logged before this was checked.
    db.table("searches").add_column("copied", int)


def _m006_calibration(db: sqlite_utils.Database) -> None:
    """Issue 15: confidence over the graded span, P(True) in both option orders, a run's provenance
    and the error that ended it."""
    items = db.table("probe_items")
    items.add_column("reason", str)  # why the grader decided as it did
    items.add_column("span_start", int)  # the graded answer within text (characters)
    items.add_column("span_end", int)
    items.add_column("n_tokens", int)  # tokens of the whole answer (the length baseline)
    items.add_column("span_tokens", int)  # tokens whose text falls in the graded span
    items.add_column("conf_min", float)  # minimum token probability over the span
    items.add_column("ptrue_true_first", float)  # P(True) with (A) True (B) False
    items.add_column("ptrue_true_second", float)  # P(True) with (A) False (B) True
    runs = db.table("probe_runs")
    runs.add_column("error", str)  # status error: what went wrong
    runs.add_column("provenance", str)  # JSON: lanes, models and sha256s, seeds, the command


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_initial,
    _m002_searches,
    _m003_probes,
    _m004_votes_and_search,
    _m005_copied_queries,
    _m006_calibration,
]
SCHEMA_VERSION = len(MIGRATIONS)


def apply(db: sqlite_utils.Database, version: int, now: str) -> None:
    """Run the migrations after *version* (inside the caller's write transaction)."""
    if not db.table("_playground_migrations").exists():
        db.table("_playground_migrations").create(
            {"version": int, "name": str, "applied_at": str}, pk="version"
        )
    for i in range(version, SCHEMA_VERSION):
        MIGRATIONS[i](db)
        db.table("_playground_migrations").insert(
            {"version": i + 1, "name": MIGRATIONS[i].__name__.lstrip("_"), "applied_at": now}
        )
    db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
