"""The session log: SQLite through sqlite-utils, WAL mode, versioned migrations.

Plain columns and JSON text only, so Datasette and the `sqlite-utils` CLI read the file as it is.
An exchange row is written before generation starts and updated while it streams, so a crash leaves
the partial answer; the next open marks rows of dead processes `interrupted`.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import sqlite_utils

from playground.core.errors import PlaygroundError

LABELS = ("correct", "hallucination", "abstained", "partial")
STATUSES = ("pending", "streaming", "complete", "cancelled", "error", "interrupted")
BUSY_TIMEOUT_S = 30.0
FLUSH_EVERY_S = 0.5


class LogError(PlaygroundError):
    pass


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _m001_initial(db: sqlite_utils.Database) -> None:
    db["sessions"].create(
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
    db["exchanges"].create(
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
    db["exchanges"].create_index(["session_id", "turn"])
    db["exchanges"].create_index(["status"])
    db["tokens"].create(
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
    db["tags"].create(
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
    db["tags"].create_index(["exchange_id"])


def _m002_searches(db: sqlite_utils.Database) -> None:
    db["searches"].create(
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
    db["searches"].create_index(["exchange_id"])
    db["searches"].create_index(["backend", "query"])
    db["exchanges"].add_column("searches", int)


def _m003_probes(db: sqlite_utils.Database) -> None:
    db["probe_runs"].create(
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
    db["probe_items"].create(
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
    db["probe_items"].create_index(["run_id", "probe_id", "lane", "sample"], unique=True)


def _m004_votes_and_search(db: sqlite_utils.Database) -> None:
    db["votes"].create(
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
    db["votes"].create_index(["session_id", "turn"])
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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_initial,
    _m002_searches,
    _m003_probes,
    _m004_votes_and_search,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _proc_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
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

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self._lock = threading.RLock()
        self.pid = os.getpid()
        self.proc_started = _proc_started(self.pid) or time.time()
        self.host = socket.gethostname()
        self.backup: Path | None = None  # the copy made before migrating an older database
        self.db = self._open()
        self.interrupted_on_open = self._recover()

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
                str(p), timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
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

    def _migrate(self, db: sqlite_utils.Database) -> None:
        version = db.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LogError(
                f"{self.path} was written by a newer version of playground (schema {version}; "
                f"this version knows up to {SCHEMA_VERSION}); it was left untouched: upgrade "
                "playground or use another file with --db"
            )
        if version == SCHEMA_VERSION:
            return
        if version > 0:
            self.backup = self._backup(db, version)
        with self._immediate(db):
            version = db.conn.execute("PRAGMA user_version").fetchone()[0]
            if not db["_playground_migrations"].exists():
                db["_playground_migrations"].create(
                    {"version": int, "name": str, "applied_at": str}, pk="version"
                )
            for i in range(version, SCHEMA_VERSION):
                MIGRATIONS[i](db)
                db["_playground_migrations"].insert(
                    {
                        "version": i + 1,
                        "name": MIGRATIONS[i].__name__.lstrip("_"),
                        "applied_at": now_iso(),
                    }
                )
            db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _immediate(
        self, db: sqlite_utils.Database | None = None
    ) -> Iterator[sqlite_utils.Database]:
        """A write transaction that takes the write lock up front (waits on busy_timeout)."""
        db = db or self.db
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
            with self._immediate() as db:
                for i in dead:
                    db.conn.execute(
                        "update exchanges set status = 'interrupted', updated_at = ? where id = ? "
                        "and status in ('pending', 'streaming')",
                        (now_iso(), i),
                    )
        return len(dead)

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self.db.conn.close()

    # -- writing -------------------------------------------------------------------------
    def new_session(
        self, lanes: list[str], title: str | None = None, parent_id: str | None = None
    ) -> str:
        from playground import __version__

        sid = uuid.uuid4().hex[:12]
        with self._immediate() as db:
            db["sessions"].insert(
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

    def start_exchange(self, **fields) -> int:
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
        with self._immediate() as db:
            db["exchanges"].insert(row)
            return int(db.conn.execute("select last_insert_rowid()").fetchone()[0])

    def update_exchange(self, exchange_id: int, tokens: list[dict] | None = None, **fields) -> None:
        fields["updated_at"] = now_iso()
        for key in ("prompt_token_ids", "prompt_special", "options"):
            if key in fields and not isinstance(fields[key], str | None):
                fields[key] = json.dumps(fields[key])
        with self._immediate() as db:
            if tokens:
                db["tokens"].insert_all(
                    [{"exchange_id": exchange_id, **t} for t in tokens], replace=True
                )
            db["exchanges"].update(exchange_id, fields)

    def add_tag(
        self, exchange_id: int, label: str, note: str | None = None, tagger: str | None = None
    ) -> int:
        if label not in LABELS:
            raise LogError(f"unknown label {label!r}: use one of {', '.join(LABELS)}")
        self.exchange(exchange_id)
        with self._immediate() as db:
            db["tags"].insert(
                {
                    "exchange_id": exchange_id,
                    "label": label,
                    "note": note,
                    "tagger": tagger or default_tagger(),
                    "created_at": now_iso(),
                }
            )
            return int(db.conn.execute("select last_insert_rowid()").fetchone()[0])

    def add_search(self, exchange_id: int | None, **fields) -> int:
        if isinstance(fields.get("results"), list):
            fields["results"] = json.dumps(fields["results"])
        with self._immediate() as db:
            db["searches"].insert({"exchange_id": exchange_id, "created_at": now_iso(), **fields})
            return int(db.conn.execute("select last_insert_rowid()").fetchone()[0])

    def update_search(self, search_id: int, **fields) -> None:
        with self._immediate() as db:
            db["searches"].update(search_id, fields, alter=True)

    def recorded_search(self, query: str, backend: str) -> str | None:
        """The results JSON of the latest successful search for *query* on *backend*."""
        with self._lock:
            row = self.db.conn.execute(
                "select results from searches where backend = ? and query = ? and error is null "
                "order by id desc limit 1",
                (backend, query),
            ).fetchone()
        return row[0] if row else None

    def searches(self, exchange_id: int) -> list[dict]:
        with self._lock:
            return list(
                self.db.query(
                    "select * from searches where exchange_id = ? order by id", [exchange_id]
                )
            )

    # -- reading -------------------------------------------------------------------------
    def exchange(self, exchange_id: int) -> dict:
        with self._lock:
            rows = list(self.db.query("select * from exchanges where id = ?", [exchange_id]))
        if not rows:
            raise LogError(f"no exchange with id {exchange_id} in {self.path}")
        return rows[0]

    def tokens(self, exchange_id: int) -> list[dict]:
        with self._lock:
            return list(
                self.db.query(
                    "select * from tokens where exchange_id = ? order by position", [exchange_id]
                )
            )

    def tags(self, exchange_id: int) -> list[dict]:
        with self._lock:
            return list(
                self.db.query("select * from tags where exchange_id = ? order by id", [exchange_id])
            )

    def sessions(self, limit: int | None = None) -> list[dict]:
        sql = """
            select s.id, s.created_at, s.lanes, s.title,
                   (select count(distinct e.turn) from exchanges e where e.session_id = s.id) as turns,
                   (select count(*) from exchanges e where e.session_id = s.id) as exchanges,
                   (select count(*) from tags t join exchanges e on t.exchange_id = e.id
                     where e.session_id = s.id) as tags
            from sessions s order by s.created_at desc
        """
        if limit:
            sql += f" limit {int(limit)}"
        with self._lock:
            return list(self.db.query(sql))


class ExchangeWriter:
    """Writes one exchange as it streams: tokens and partial text at most every FLUSH_EVERY_S."""

    def __init__(self, log: SessionLog, exchange_id: int):
        self.log = log
        self.id = exchange_id
        self.pending: list[dict] = []
        self.text = ""
        self.last_flush = 0.0

    def streaming(self, **fields) -> None:
        self.log.update_exchange(self.id, status="streaming", **fields)
        self.last_flush = time.monotonic()

    def token(
        self,
        position: int,
        token_id: int,
        text: str,
        logprob: float,
        top,
        elapsed: float,
        delta: str,
    ) -> None:
        self.text += delta
        if (
            token_id != -1
        ):  # -1: text released without a token; below -1: a server's token, id unknown
            self.pending.append(
                {
                    "position": position,
                    "token_id": token_id if token_id >= 0 else None,
                    "text": text,
                    "logprob": logprob if logprob == logprob else None,  # NaN: not sent
                    "top": json.dumps(top),
                    "elapsed": round(elapsed, 4),
                }
            )
        if time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
            self.flush()

    def token_event(self, ev) -> None:
        """Record a Token event (see playground.core.events.Token)."""
        self.token(
            ev.index,
            ev.token_id,
            ev.piece,
            ev.logprob,
            [[a.token_id, a.text, a.logprob] for a in ev.top],
            ev.elapsed,
            ev.text,
        )

    def flush(self, **fields) -> None:
        self.log.update_exchange(self.id, tokens=self.pending, output_text=self.text, **fields)
        self.pending = []
        self.last_flush = time.monotonic()
