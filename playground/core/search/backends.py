"""Search backends: the offline corpus (SQLite FTS5, BM25), the web (ddgs), and recorded results."""

from __future__ import annotations

import html.parser
import json
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from playground.core.errors import PlaygroundError
from playground.core.events import SearchResult
from playground.core.locations import cache_dir
from playground.core.search.markers import MAX_QUERY_CHARS

CORPUS_VERSION = "2"
MAX_FILE_BYTES = 2_000_000
PASSAGE_CHARS = 1200
STOPWORDS = set(
    "a an the of in on at to for by with from and or is are was were be been who what when where which "
    "whom whose why how do does did it its this that these those as about into than then there their "
    "they he she his her him i you we me my your our us".split()
)


_T = TypeVar("_T")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class SearchError(PlaygroundError):
    """A search that could not give results; the message is what the model and the user see."""


@dataclass(frozen=True)
class Result:
    title: str
    source: str
    text: str

    def as_dict(self) -> SearchResult:
        return SearchResult(title=self.title, source=self.source, text=self.text)


def check_query(query: str) -> str:
    """The query a backend receives: spacing collapsed, control characters (a terminal escape,
    a NUL a model wrote) as spaces; the log keeps the model's exact text."""
    q = " ".join(_CONTROL.sub(" ", query).split())
    if not q:
        raise SearchError("empty query")
    if len(q) > MAX_QUERY_CHARS:
        raise SearchError(f"query too long ({len(q)} characters; at most {MAX_QUERY_CHARS})")
    return q


def default_corpus_path() -> Path:
    return cache_dir() / "corpus.sqlite"


class _TextOnly(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        if tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self.skip:
            self.skip -= 1
        if tag == "title":
            self._in_title = False
        if tag in ("p", "div", "li", "h1", "h2", "h3", "br", "tr"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self.skip:
            self.parts.append(data)


class Corpus:
    """The offline search corpus: built-in articles plus the user's files, in SQLite FTS5."""

    name = "offline"

    def __init__(self, path: Path | None = None, k: int = 3):
        self.path = Path(path) if path else default_corpus_path()
        self.k = k
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        tables = {r[0] for r in self.conn.execute("select name from sqlite_master")}
        if tables and "docs" not in tables:  # another program's database: leave it untouched
            self.conn.close()
            raise SearchError(
                f"{self.path} is a SQLite database but not a search corpus (it has no docs "
                "table); it was left untouched: give another --corpus"
            )
        self.conn.execute("PRAGMA journal_mode = WAL")
        self._ensure()

    def _ensure(self) -> None:
        with self._lock, self.conn:
            self.conn.execute("create table if not exists meta (key text primary key, value text)")
            self.conn.execute(
                "create virtual table if not exists docs using fts5(title, source, body, builtin UNINDEXED, "
                "tokenize = 'porter unicode61 remove_diacritics 2')"
            )
            row = self.conn.execute(
                "select value from meta where key = 'builtin_version'"
            ).fetchone()
            if row is None or row[0] != CORPUS_VERSION:
                from playground.core.facts import articles

                self.conn.execute("delete from docs where builtin = 1")
                self.conn.executemany(
                    "insert into docs (title, source, body, builtin) values (?, ?, ?, 1)",
                    [(a.title, a.source, a.text) for a in articles()],
                )
                self.conn.execute(
                    "insert or replace into meta values ('builtin_version', ?)", (CORPUS_VERSION,)
                )

    def count(self) -> int:
        with self._lock:
            n: int = self.conn.execute("select count(*) from docs").fetchone()[0]
        return n

    def add_text(self, title: str, source: str, text: str) -> int:
        passages = _passages(text)
        with self._lock, self.conn:
            self.conn.execute("delete from docs where source = ? and builtin = 0", (source,))
            self.conn.executemany(
                "insert into docs (title, source, body, builtin) values (?, ?, ?, 0)",
                [
                    (title if len(passages) == 1 else f"{title} ({i + 1})", source, p)
                    for i, p in enumerate(passages)
                ],
            )
        return len(passages)

    def add_file(self, path: Path) -> int:
        """Index a Markdown, text or HTML file; raise SearchError saying why a file was skipped."""
        p = Path(path)
        if p.is_dir():
            raise SearchError(f"{p} is a directory (give files, or a shell glob such as docs/*.md)")
        try:
            st = p.stat()
        except OSError as e:
            raise SearchError(f"cannot read {p}: {e.strerror}") from e
        if not stat.S_ISREG(st.st_mode):  # a FIFO or /dev/zero would block or never end
            raise SearchError(f"{p} skipped: not a regular file (a pipe, device or socket)")
        size = st.st_size
        if size > MAX_FILE_BYTES:
            raise SearchError(
                f"{p} skipped: {size / 1e6:.1f} MB is over the {MAX_FILE_BYTES / 1e6:.0f} MB limit per file"
            )
        raw = p.read_bytes()
        if b"\x00" in raw[:8192]:
            raise SearchError(f"{p} skipped: it is a binary file, not text")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SearchError(
                f"{p} skipped: not UTF-8 text (byte {e.start}); convert it to UTF-8 first"
            ) from e
        title = p.stem
        if p.suffix.lower() in (".html", ".htm"):
            parser = _TextOnly()
            parser.feed(text)
            text = "".join(parser.parts)
            title = parser.title.strip() or title
        elif (m := re.match(r"\s*#\s+(.+)", text)) is not None:
            title = m.group(1).strip()
        if not text.strip():
            raise SearchError(f"{p} skipped: it has no text")
        return self.add_text(title, str(p.resolve()), text)

    def search(self, query: str) -> list[Result]:
        q = check_query(query)
        terms = [t for t in re.findall(r"\w+", q.lower()) if t not in STOPWORDS] or re.findall(
            r"\w+", q.lower()
        )
        if not terms:
            raise SearchError("the query has no words to search for")
        if self.count() == 0:
            raise SearchError("the search corpus is empty: add files with `playground corpus add`")
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        with self._lock:
            rows = self.conn.execute(
                "select title, source, body from docs where docs match ? order by bm25(docs, 5.0, 0.5, 1.0) limit ?",
                (match, self.k),
            ).fetchall()
        return [Result(t, s, b) for t, s, b in rows]

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _passages(text: str) -> list[str]:
    text = re.sub(r"\n{3,}", "\n\n", text.strip())
    if len(text) <= PASSAGE_CHARS:
        return [text]
    out, cur = [], ""
    for para in text.split("\n\n"):
        if cur and len(cur) + len(para) > PASSAGE_CHARS:
            out.append(cur)
            cur = ""
        while len(para) > PASSAGE_CHARS:
            out.append(para[:PASSAGE_CHARS])
            para = para[PASSAGE_CHARS:]
        cur = f"{cur}\n\n{para}" if cur else para
    if cur:
        out.append(cur)
    return out


class WebSearch:
    """Live web search through ddgs, with a timeout and retries with backoff when rate-limited."""

    name = "web"

    def __init__(
        self,
        k: int = 3,
        timeout: float = 8.0,
        retries: int = 2,
        proxy: str | None = None,
        backoff: float = 1.0,
    ):
        self.k = k
        self.timeout = timeout
        self.retries = retries
        self.proxy = proxy
        self.backoff = backoff

    def search(self, query: str) -> list[Result]:
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

        q = check_query(query)
        deadline = (
            time.monotonic() + self.timeout * (self.retries + 1) + self.backoff * 2**self.retries
        )
        for attempt in range(self.retries + 1):
            try:
                hits = self._call(
                    lambda: DDGS(proxy=self.proxy, timeout=max(1, int(self.timeout))).text(
                        q, max_results=self.k
                    )
                )
                return [
                    Result(h.get("title", ""), h.get("href", ""), h.get("body", ""))
                    for h in hits[: self.k]
                ]
            except RatelimitException as e:
                if attempt == self.retries or time.monotonic() > deadline:
                    raise SearchError(
                        f"the web search is rate-limited; tried {attempt + 1} times ({e})"
                    ) from e
                time.sleep(self.backoff * 2**attempt)
            except TimeoutException as e:
                if attempt == self.retries:
                    raise SearchError(
                        f"the web search timed out after {self.timeout:g} s ({attempt + 1} tries)"
                    ) from e
            except DDGSException as e:
                msg = str(e)
                if "No results" in msg:
                    return []
                raise SearchError(
                    f"offline: the web search service could not be reached ({_short(msg)})"
                ) from e
            except Exception as e:  # the HTTP layer raises its own types for refused connections
                raise SearchError(
                    f"offline: the web search service could not be reached ({_short(str(e))})"
                ) from e
        raise SearchError("the web search failed")

    def _call(self, fn: Callable[[], _T]) -> _T:
        """Run one ddgs call with an overall deadline: ddgs tries several engines in turn, each
        with its own timeout, so a dead network could otherwise take many times the timeout."""
        from ddgs.exceptions import TimeoutException

        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as e:  # handed to the caller's thread
                box["error"] = e

        t = threading.Thread(target=run, name="web-search", daemon=True)
        t.start()
        t.join(self.timeout + 0.5)
        if t.is_alive():
            raise TimeoutException(f"no answer within {self.timeout:g} s")
        if "error" in box:
            raise box["error"]
        value: _T = box["value"]
        return value


def _short(msg: str, n: int = 200) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= n else msg[: n - 1] + "…"


class SearchRecords(Protocol):
    """What `RecordedSearch` needs of the session log (`SessionLog` has it)."""

    @property
    def path(self) -> Path: ...

    def recorded_search(self, query: str, backend: str) -> str | None: ...


class RecordedSearch:
    """Results saved earlier in the session log, replayed so a workshop can run offline."""

    name = "recorded"

    def __init__(self, log: SearchRecords, backend: str = "web"):
        self.log = log
        self.backend = backend

    def search(self, query: str) -> list[Result]:
        q = check_query(query)
        row = self.log.recorded_search(q, self.backend)
        if row is None:
            raise SearchError(f"no recorded {self.backend} results for {q!r} in {self.log.path}")
        return [Result(**r) for r in json.loads(row)]


def make_backend(
    name: str,
    log: SearchRecords | None = None,
    corpus_path: Path | None = None,
    proxy: str | None = None,
) -> Corpus | WebSearch | RecordedSearch:
    if name == "offline":
        return Corpus(corpus_path)
    if name == "web":
        return WebSearch(proxy=proxy)
    if name == "recorded":
        if log is None:
            raise SearchError("recorded search needs the session database")
        return RecordedSearch(log)
    raise SearchError(f"unknown search backend {name!r}: use offline, web or recorded")
