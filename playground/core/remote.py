"""Remote lanes: a model behind an OpenAI-compatible server (llama.cpp's llama-server,
llama-cpp-python's server, vLLM, Ollama).

Raw and few-shot modes use /v1/completions with the prompt as text; chat mode uses
/v1/chat/completions with messages, so the server applies the model's template. Streaming,
per-token log-probabilities with top-k alternatives (when the server sends them: the lane says so
when it does not), stop sequences and cancel work as in local lanes. API keys come from an
environment variable named in the catalog, or the OS keyring; they are never logged, and a url is
stored and shown without its credentials (`redact_url`).

A server is not trusted to behave: every answer is checked against the API's shapes (a bad one is
a `RemoteError` saying what was wrong), `max_tokens` is enforced here, deadlines that a trickle of
bytes cannot reset bound each phase (catalog `*_timeout`), requests to one server are serialized
(catalog `max_concurrent`), and control-token strings in the text we send are defused.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, TypeGuard
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from playground.core.catalog import Deadlines, ModelSpec
from playground.core.engine import EngineError, Outcome, Sampling
from playground.core.events import (
    FINISH_REASONS,
    SERVER_TOKEN,
    Alternative,
    FinishReason,
    Stats,
    Token,
)
from playground.core.prompts import (
    FEW_SHOT_STOPS,
    ModeSpec,
    abstain_rule,
    build_layout,
)
from playground.core.search.tool import neutralize_control
from playground.core.urls import REDACTED, redact_url, redact_urls, url_secrets

MAX_LINE_BYTES = 1 << 20  # one line of a stream (one chunk): more is not an OpenAI server
MAX_BODY_BYTES = 4 << 20  # a /models answer
MAX_ERROR_BYTES = 64 << 10  # what we read of an error page


class RemoteError(EngineError):
    pass


class ChatMessage(TypedDict):
    """One message of a chat request (/v1/chat/completions)."""

    role: Literal["system", "user", "assistant"]
    content: str


Json = dict[str, Any]
"""A JSON object of the OpenAI API (a request body, a streamed chunk): open-ended."""


@dataclass
class RemoteInfo:
    """What the catalog says of a remote model (the file is on the server)."""

    architecture: str = "remote"
    has_chat_template: bool = True
    parameters_human: str = "?"
    size: int = 0

    def summary(self) -> dict[str, Any]:
        return {"architecture": "remote"}


def api_key(env_name: str | None, service: str | None = None) -> str | None:
    if env_name and os.environ.get(env_name):
        return os.environ[env_name]
    if service:
        try:
            import keyring

            key: str | None = keyring.get_password(service, "api_key")
            return key
        except Exception:  # keyring is optional; no key is a clear HTTP 401 later
            return None
    return None


@dataclass
class RemoteConversation:
    """A lane's turns as text (raw, few-shot) or messages (chat), for a server to render."""

    spec: ModeSpec
    turns: list[tuple[str, str]] = field(default_factory=list)
    # Control-token strings defused in the last prompt or messages rendered: a server tokenizes
    # text with its special tokens parsed, so `<|im_end|>` in a question would end the turn.
    neutralized: int = 0

    def _defuse(self, text: str) -> str:
        text, n = neutralize_control(text)
        self.neutralized += n
        return text

    def prompt_text(self, question: str) -> str:
        self.neutralized = 0
        layout = build_layout(self.spec, _NoTokenizer())
        head = "".join(s.text for s in layout.head)
        parts = [head]
        for i, (q, a) in enumerate([*self.turns, (question, None)]):
            parts += [s.text for s in (layout.first_user_open if i == 0 else layout.user_open)]
            parts.append(self._defuse(q))
            parts += [s.text for s in layout.user_close]
            if a is not None:
                parts.append(self._defuse(a))
                parts += [s.text for s in layout.answer_close]
        return "".join(parts)

    def messages(self, question: str) -> list[ChatMessage]:
        self.neutralized = 0
        out: list[ChatMessage] = []
        system = self.spec.system_prompt
        if self.spec.abstain is not None:
            rule = abstain_rule(self.spec.abstain)
            system = f"{system}\n\n{rule}" if system else rule
        if system:
            out.append({"role": "system", "content": self._defuse(system)})
        for q, a in self.turns:
            out += [
                {"role": "user", "content": self._defuse(q)},
                {"role": "assistant", "content": self._defuse(a)},
            ]
        out.append({"role": "user", "content": self._defuse(question)})
        return out

    def stops(self) -> list[str]:
        return list(FEW_SHOT_STOPS) if self.spec.mode == "few-shot" else []


class _NoTokenizer:
    """build_layout needs a tokenizer only for chat templates, which remote lanes leave to the server."""

    model_id = "remote"
    add_bos = False
    bos_id: int | None = None
    bos_text = ""
    eos_text = ""
    chat_template: str | None = None
    n_ctx = 0

    def tokenize(self, text: str, special: bool) -> list[int]:
        raise RemoteError("a remote lane has no tokenizer here")

    def is_special(self, token_id: int) -> bool:
        raise RemoteError("a remote lane has no tokenizer here")

    def detokenize(self, ids: list[int]) -> str:
        raise RemoteError("a remote lane has no tokenizer here")


# -- deadlines ---------------------------------------------------------------------------------

_DEADLINE_KEYS = {
    "connect": "connect_timeout",
    "check": "check_timeout",
    "first_token": "first_token_timeout",
    "token": "token_timeout",
    "answer": "answer_timeout",
}


POLL_S = 0.25  # a silent server's socket is polled this often for a cancel


class _Cancelled(Exception):
    """The lane was cancelled while the server was silent."""


class _Clock:
    """The deadlines running for one request. Every read, write and connect waits at most until
    the nearest one, so a server that trickles a byte at a time cannot push them back; a read also
    ends on *cancel*, however silent the server."""

    def __init__(self, deadlines: Deadlines, cancel: threading.Event | None = None) -> None:
        self.deadlines = deadlines
        self.cancel = cancel
        self.running: dict[str, float] = {}  # deadline name -> monotonic time it passes

    def start(self, name: str) -> None:
        self.running[name] = time.monotonic() + getattr(self.deadlines, name)

    def stop(self, name: str) -> None:
        self.running.pop(name, None)

    def left(self) -> float:
        return min(self.running.values(), default=math.inf) - time.monotonic()

    def passed(self) -> str | None:
        """The deadline that has passed (a few ms early counts: socket timers round down)."""
        now = time.monotonic() + 0.005
        due = [name for name, end in self.running.items() if end <= now]
        return min(due, key=self.running.__getitem__) if due else None

    def wait(self, timeout: float | None) -> float:
        """How long one socket operation may wait: its own timeout or the nearest deadline."""
        left = self.left()
        if left <= 0.001 or (timeout is not None and timeout <= 0.001):
            raise httpcore.ReadTimeout("deadline passed")
        return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, clock: _Clock) -> None:
        self.inner = inner
        self.clock = clock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        end = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            wait = self.clock.wait(end - time.monotonic())
            try:  # a recv that times out consumes nothing: the next one reads on
                return self.inner.read(max_bytes, min(wait, POLL_S))
            except httpcore.ReadTimeout:
                if self.clock.cancel is not None and self.clock.cancel.is_set():
                    raise _Cancelled from None
                if wait <= POLL_S:
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.clock.wait(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self.inner.start_tls(ssl_context, server_hostname, self.clock.wait(timeout))
        return _Stream(inner, self.clock)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's sockets with the clock's deadlines on every operation."""

    def __init__(self, clock: _Clock) -> None:
        self.inner = httpcore.SyncBackend()
        self.clock = clock

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = self.clock.wait(timeout)
        stream = self.inner.connect_tcp(host, port, wait, local_address, socket_options)
        return _Stream(stream, self.clock)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads the CA bundle: a tenth of a second, so once


def _client(clock: _Clock, headers: dict[str, str]) -> httpx.Client:
    transport = httpx.HTTPTransport(verify=_ssl_context())
    transport._pool = httpcore.ConnectionPool(  # httpx has no public way to give the sockets
        ssl_context=_ssl_context(), network_backend=_Backend(clock)
    )
    d = clock.deadlines
    # The clock bounds every operation; these are the per-operation limits under it.
    timeout = httpx.Timeout(d.answer, connect=d.connect)
    return httpx.Client(transport=transport, headers=headers, timeout=timeout)


# -- one server, one request at a time -----------------------------------------------------------

_SERVER_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SERVER_SLOTS_LOCK = threading.Lock()


def server_slots(url: str, max_concurrent: int) -> threading.BoundedSemaphore:
    """The requests a server takes at once, shared by every lane of this process that uses it
    (llama-cpp-python's server drops a stream when a second request arrives). The first catalog
    entry to use a server sets its number."""
    parts = urlsplit(url)
    key = f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path.rstrip('/')}"
    with _SERVER_SLOTS_LOCK:
        return _SERVER_SLOTS.setdefault(key, threading.BoundedSemaphore(max_concurrent))


# -- the model -----------------------------------------------------------------------------------


class _Bad(Exception):
    """A server's answer that breaks the API's shapes; the message says what was wrong."""


class RemoteModel:
    """A model served over HTTP. Thread-safe: each request has its own connection."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.model_id = spec.id
        if spec.url is None:  # the catalog gives every remote model a url
            raise RemoteError(f"the model {spec.id} has no server url")
        self._url = spec.url  # as written: what requests use
        self.url = redact_url(spec.url).rstrip("/")  # as stored and shown: no credentials
        self.remote_model = spec.remote_model or spec.id
        self.info = RemoteInfo()
        self.path = self.url
        self.n_ctx = spec.n_ctx
        self.n_gpu_layers = 0
        self.load_seconds = 0.0
        self.lock = threading.Lock()
        self._key = api_key(spec.api_key_env, spec.keyring_service)
        self.deadlines = spec.deadlines
        self.slots = server_slots(self._url, spec.max_concurrent)
        self._secrets = url_secrets(self._url) + ([self._key] if self._key else [])

    @property
    def family(self) -> str:
        return self.spec.family or f"remote ({self.remote_model})"

    def set_threads(self, n: int) -> None:  # the server decides
        pass

    def close(self) -> None:
        pass

    def _endpoint(self, path: str) -> str:
        """The url of an API path: after the catalog url's path, before its query (a key)."""
        parts = urlsplit(self._url)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path))

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self._key:
            h["Authorization"] = f"Bearer {self._key}"
        return h

    def _fail(self, what: str, msg: str | None = None) -> RemoteError:
        """An error naming the server; no credential of ours in it, whatever the server echoed."""
        msg = redact_urls(msg or f"the server at {self.url} {what}")
        for secret in self._secrets:
            msg = msg.replace(secret, REDACTED)
        return RemoteError(msg)

    def _error(self, e: httpx.HTTPError, clock: _Clock, n: int | None = None) -> RemoteError:
        """One message for each way HTTP fails: unreachable, a deadline passed, cut off mid-answer
        (*n*: the tokens received so far; None before the answer)."""
        passed = clock.passed()
        if passed is not None:
            return self._fail(_deadline_text(passed, clock.deadlines, n))
        if isinstance(e, httpx.ConnectTimeout):
            return self._fail(_deadline_text("connect", clock.deadlines, n))
        if isinstance(e, httpx.ConnectError):
            return self._fail("", f"cannot reach the server at {self.url} ({_why(e)})")
        if isinstance(e, httpx.TimeoutException):  # a limit under the clock's (not ours): say so
            return self._fail(f"timed out ({_why(e)})")
        if n is not None and isinstance(e, httpx.RemoteProtocolError | httpx.ReadError):
            return self._fail(
                f"stopped in the middle of the answer, after {_tokens(n)} ({_why(e)})"
            )
        return self._fail(f"failed: {_why(e)}")

    def _refused(self, r: httpx.Response, what: str) -> RemoteError:
        """A status other than 200: 401, a redirect, an error page (its text, tags dropped)."""
        if r.status_code == 401:
            need = self.spec.api_key_env or "api_key_env in the catalog"
            return self._fail(f"wants an API key: set {need}")
        if r.is_redirect:
            where = r.headers.get("location", "?")
            return self._fail(
                f"redirected {what} to {_short(where, 120)} (HTTP {r.status_code}): "
                "put the new address in the catalog's url"
            )
        body = _read_some(r, MAX_ERROR_BYTES).decode("utf-8", "replace")
        if "html" in r.headers.get("content-type", "").lower() or body.lstrip().startswith("<"):
            body = re.sub(r"(?s)<(script|style)\b.*?</\1\s*>|<[^>]*>", " ", body)
        detail = _short(body)
        return self._fail(
            f"answered HTTP {r.status_code} to {what}" + (f": {detail}" if detail else "")
        )

    def check(self) -> None:
        """Reach the server and find the model; a clear error otherwise."""
        clock = _Clock(self.deadlines)
        clock.start("check")
        try:
            with (
                _client(clock, self._headers()) as client,
                client.stream("GET", self._endpoint("/models")) as r,
            ):
                if r.status_code != 200:
                    raise self._refused(r, "/models")
                body = _read_some(r, MAX_BODY_BYTES + 1)
        except httpx.HTTPError as e:
            raise self._error(e, clock) from e
        if len(body) > MAX_BODY_BYTES:
            raise self._fail(f"sent a /models answer over {MAX_BODY_BYTES >> 20} MiB")
        try:
            names = _model_names(body)
        except _Bad as e:
            raise self._fail(f"sent a /models answer the OpenAI API does not allow: {e}") from None
        if self.remote_model not in names:
            has = ", ".join(names) if names else "none"
            raise self._fail(f"has no model {self.remote_model!r} (it has: {_short(has)})")

    def _body(self, payload: Json, endpoint: str, sampling: Sampling) -> Json:
        """The request: the catalog's extra_body, the prompt or messages, the settings."""
        body: Json = {
            **(self.spec.extra_body or {}),
            **payload,
            "model": self.remote_model,
            "stream": True,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.top_k:
            body["top_k"] = sampling.top_k
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if self.spec.logprobs:
            body.update(
                {"logprobs": True, "top_logprobs": 5} if endpoint == "chat" else {"logprobs": 5}
            )
        return body

    def generate(
        self,
        payload: Json,
        endpoint: str,
        sampling: Sampling,
        outcome: Outcome,
        cancel: threading.Event | None = None,
        lane: str = "",
    ) -> Iterator[Token]:
        """Stream a completion; fill *outcome* (text, token count, finish reason, stats) as it
        goes. Waits for the server's slot first (catalog max_concurrent). The stream stops on
        *cancel*, after `sampling.max_tokens` tokens whatever the server does, and after the
        token just yielded when the consumer sets `outcome.interrupt` (a closed search query)."""
        while not self.slots.acquire(timeout=0.1):
            if cancel is not None and cancel.is_set():
                outcome.finish_reason = "cancelled"
                outcome.stats = Stats.streamed(0, None, 0.0, [], complete=True)
                return
        try:
            yield from self._generate(payload, endpoint, sampling, outcome, cancel, lane)
        finally:
            self.slots.release()

    def _generate(
        self,
        payload: Json,
        endpoint: str,
        sampling: Sampling,
        outcome: Outcome,
        cancel: threading.Event | None,
        lane: str,
    ) -> Iterator[Token]:
        body = self._body(payload, endpoint, sampling)
        path = "/chat/completions" if endpoint == "chat" else "/completions"
        clock = _Clock(self.deadlines, cancel)
        clock.start("answer")
        clock.start("first_token")
        t0 = time.perf_counter()
        ttft = None
        n = 0
        text = ""
        logprobs: list[float] = []
        finish: FinishReason | None = None
        streamed = False  # a `data:` line came
        try:
            with (
                _client(clock, self._headers()) as client,
                client.stream("POST", self._endpoint(path), json=body) as r,
            ):
                if r.status_code != 200:
                    raise self._refused(r, path)
                for line in _lines(r.iter_bytes()):
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
                    if not line.startswith("data:"):
                        continue  # SSE comments, event names, blank separators
                    streamed = True
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        choice = _choice(data)
                        if choice is None:  # a chunk without choices (usage figures)
                            continue
                        pieces = list(_pieces(choice, endpoint))
                        reason = _reason(choice)
                    except _Bad as e:
                        raise self._fail(
                            f"sent a chunk the OpenAI API does not allow: {e} "
                            f"(after {_tokens(n)}; the chunk: {_short(data, 80)})"
                        ) from None
                    for piece, lp, top in pieces:
                        if ttft is None:
                            ttft = time.perf_counter() - t0
                            clock.stop("first_token")
                        clock.start("token")
                        text += piece
                        if lp is not None:
                            logprobs.append(lp)
                        outcome.token_ids.append(SERVER_TOKEN)
                        yield Token(
                            lane,
                            n,
                            SERVER_TOKEN,
                            piece,
                            piece,
                            lp if lp is not None else math.nan,
                            top,
                            time.perf_counter() - t0,
                        )
                        n += 1
                        if outcome.interrupt:  # the lane runner stops here (a closed query)
                            finish = "tool"
                            break
                        if n >= sampling.max_tokens:  # the server may not stop: we do
                            finish = reason or "length"
                            break
                    else:
                        finish = reason
                    if finish is not None:  # what follows (usage, [DONE]) is not read
                        break
                kind = r.headers.get("content-type", "no Content-Type")
                if finish is None and not streamed and "event-stream" not in kind:
                    raise self._fail(
                        f"sent no event stream (no 'data:' line; {_short(kind, 60)}): "
                        "does it stream (stream = true)?"
                    )
                if finish is None:
                    raise self._fail(
                        f"closed the stream without a finish reason, after {_tokens(n)}"
                    )
        except _Cancelled:
            finish = "cancelled"
        except _Bad as e:
            raise self._fail(f"{e} (after {_tokens(n)})") from None
        except httpx.HTTPError as e:
            raise self._error(e, clock, n) from e
        finally:
            outcome.text = text
        total = time.perf_counter() - t0
        outcome.finish_reason = finish
        outcome.answer_ids = []
        outcome.stats = Stats.streamed(n, ttft, total, logprobs, complete=len(logprobs) == n)
        outcome.has_logprobs = bool(logprobs)


def _tokens(n: int) -> str:
    return "1 token" if n == 1 else f"{n} tokens"


def _deadline_text(name: str, d: Deadlines, n: int | None) -> str:
    """What a passed deadline means, with its catalog key and value."""
    value = getattr(d, name)
    what = {
        "connect": "could not be reached",
        "check": "did not list its models",
        "first_token": "sent no token",
        "token": "sent no next token",
        "answer": "did not finish the answer",
    }[name]
    after = f", after {_tokens(n)}" if n else ""
    return (
        f"{what} within {value:g} s{after} (the catalog's {_DEADLINE_KEYS[name]}: "
        "raise it if the server is just slow)"
    )


# -- reading what a server sends -------------------------------------------------------------------


def _read_some(r: httpx.Response, limit: int) -> bytes:
    """At most *limit* bytes of a response body (an error page, a /models answer)."""
    out = bytearray()
    for chunk in r.iter_bytes():
        out += chunk
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of a stream, each at most MAX_LINE_BYTES and valid UTF-8 (JSON is)."""
    buf = bytearray()
    for chunk in chunks:
        start = len(buf)
        buf += chunk
        while (i := buf.find(b"\n", start)) >= 0:
            yield _decode(bytes(buf[:i]).rstrip(b"\r"))
            del buf[: i + 1]
            start = 0
        if len(buf) > MAX_LINE_BYTES:
            raise _Bad(f"sent a line of over {MAX_LINE_BYTES >> 20} MiB without a line break")
    if buf:
        yield _decode(bytes(buf).rstrip(b"\r"))


def _decode(line: bytes) -> str:
    if len(line) > MAX_LINE_BYTES:
        raise _Bad(f"sent a line of over {MAX_LINE_BYTES >> 20} MiB")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad(
            f"sent a line that is not UTF-8 (byte 0x{line[e.start]:02x} at position {e.start})"
        ) from None


def _kind(value: object) -> str:
    """A JSON value's type, as a message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _get(obj: Json, key: str, want: type, where: str) -> Any:
    """obj[key] when it is of type *want* or null/absent (None); otherwise a _Bad naming it."""
    value = obj.get(key)
    if value is None or isinstance(value, want):
        return value
    names: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}
    wanted = names.get(want, want.__name__)
    raise _Bad(f"{where}{key} is {_kind(value)}, not {wanted}")


def _logprob(value: object, where: str) -> float | None:
    """A log-probability: a finite number at most 0, or null (a token without probability)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Bad(f"{where} is {_kind(value)} ({_short(repr(value), 40)}), not a log-probability")
    if value > 1e-3:
        raise _Bad(f"{where} is {value:g}, above 0: not a log-probability")
    return min(float(value), 0.0)


def _json_object(data: str | bytes, what: str) -> Json:
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Bad(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise _Bad(f"{what} is {_kind(value)}, not a JSON object")
    return value


def _model_names(body: bytes) -> list[str]:
    """The model ids of a /models answer: {"data": [{"id": ...}, ...]}."""
    obj = _json_object(body, "it")
    data = obj.get("data")
    if not isinstance(data, list):
        raise _Bad(f"data is {_kind(data)}, not a list of models")
    names = []
    for i, m in enumerate(data):
        if not isinstance(m, dict) or not isinstance(m.get("id"), str):
            raise _Bad(f"data[{i}] is not a model with an id")
        names.append(m["id"])
    return names


def _choice(data: str) -> Json | None:
    """The first choice of a streamed chunk; None for a chunk without choices. A chunk that
    reports an error is a _Bad with the server's message."""
    chunk = _json_object(data, "it")
    if "error" in chunk:
        err = chunk["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        raise _Bad(f"reported an error: {_short(str(msg))}")
    choices = _get(chunk, "choices", list, "")
    if not choices:
        return None
    if not isinstance(choices[0], dict):
        raise _Bad(f"choices[0] is {_kind(choices[0])}, not an object")
    return choices[0]


def _reason(choice: Json) -> FinishReason | None:
    reason = _get(choice, "finish_reason", str, "")
    return None if reason is None else _finish_reason(reason)


def _is_finish_reason(reason: object) -> TypeGuard[FinishReason]:
    return reason in FINISH_REASONS


def _finish_reason(reason: object) -> FinishReason:
    """A server's finish reason: the OpenAI API's (stop, length, content_filter, tool_calls,
    function_call) as it is; one outside the API reads as "stop" (the server ended the answer)."""
    return reason if _is_finish_reason(reason) else "stop"


def _pieces(choice: Json, endpoint: str) -> Iterator[tuple[str, float | None, list[Alternative]]]:
    """(text, logprob, top alternatives) for each token in a streamed chunk's choice, its shapes
    checked (a _Bad says what is wrong). A null log-probability is a token without one."""
    if endpoint == "chat":
        delta = _get(choice, "delta", dict, "") or {}
        content = _get(delta, "content", str, "delta.")
        lps = _get(choice, "logprobs", dict, "") or {}
        items = _get(lps, "content", list, "logprobs.")
        if items:
            for i, item in enumerate(items):
                where = f"logprobs.content[{i}]"
                if not isinstance(item, dict):
                    raise _Bad(f"{where} is {_kind(item)}, not an object")
                token = _get(item, "token", str, f"{where}.") or ""
                lp = _logprob(item.get("logprob"), f"{where}.logprob")
                top: list[Alternative] = []
                for j, t in enumerate(_get(item, "top_logprobs", list, f"{where}.") or []):
                    if not isinstance(t, dict):
                        raise _Bad(f"{where}.top_logprobs[{j}] is {_kind(t)}, not an object")
                    alt = _get(t, "token", str, f"{where}.top_logprobs[{j}].") or ""
                    p = _logprob(t.get("logprob"), f"{where}.top_logprobs[{j}].logprob")
                    if p is not None:
                        top.append(Alternative(SERVER_TOKEN, alt, p))
                yield token, lp, top
        elif content:
            yield content, None, []
        return
    text = _get(choice, "text", str, "") or ""
    lps = _get(choice, "logprobs", dict, "") or {}
    tokens = _get(lps, "tokens", list, "logprobs.")
    if tokens:
        probs = _get(lps, "token_logprobs", list, "logprobs.") or []
        tops = _get(lps, "top_logprobs", list, "logprobs.") or []
        for i, tok in enumerate(tokens):
            if not isinstance(tok, str):
                raise _Bad(f"logprobs.tokens[{i}] is {_kind(tok)}, not a string")
            lp = _logprob(probs[i] if i < len(probs) else None, f"logprobs.token_logprobs[{i}]")
            given = tops[i] if i < len(tops) else None
            if given is not None and not isinstance(given, dict):
                raise _Bad(f"logprobs.top_logprobs[{i}] is {_kind(given)}, not an object")
            alts = [
                Alternative(SERVER_TOKEN, k, p)
                for k, v in (given or {}).items()
                if (p := _logprob(v, f"logprobs.top_logprobs[{i}][{k!r}]")) is not None
            ]
            yield tok, lp, sorted(alts, key=lambda a: -a.logprob)
    elif text:
        yield text, None, []


def _why(e: Exception) -> str:
    return _short(str(e) or type(e).__name__)


def _short(s: str, n: int = 200) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"
