"""Remote lanes: a model behind an OpenAI-compatible server (llama.cpp's llama-server,
llama-cpp-python's server, vLLM, Ollama).

Raw and few-shot modes use /v1/completions with the prompt as text; chat mode uses
/v1/chat/completions with messages, so the server applies the model's template. Streaming,
per-token log-probabilities with top-k alternatives (when the server sends them: the lane says so
when it does not), stop sequences and cancel work as in local lanes. API keys come from an
environment variable named in the catalog, or the OS keyring; they are never logged.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, TypeGuard

import httpx

from playground.core.catalog import ModelSpec
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

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0


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

    def prompt_text(self, question: str) -> str:
        layout = build_layout(self.spec, _NoTokenizer())
        head = "".join(s.text for s in layout.head)
        parts = [head]
        for i, (q, a) in enumerate([*self.turns, (question, None)]):
            parts += [s.text for s in (layout.first_user_open if i == 0 else layout.user_open)]
            parts.append(q)
            parts += [s.text for s in layout.user_close]
            if a is not None:
                parts.append(a)
                parts += [s.text for s in layout.answer_close]
        return "".join(parts)

    def messages(self, question: str) -> list[ChatMessage]:
        out: list[ChatMessage] = []
        system = self.spec.system_prompt
        if self.spec.abstain is not None:
            rule = abstain_rule(self.spec.abstain)
            system = f"{system}\n\n{rule}" if system else rule
        if system:
            out.append({"role": "system", "content": system})
        for q, a in self.turns:
            out += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        out.append({"role": "user", "content": question})
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


class RemoteModel:
    """A model served over HTTP. Thread-safe: each request has its own connection."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.model_id = spec.id
        if spec.url is None:  # the catalog gives every remote model a url
            raise RemoteError(f"the model {spec.id} has no server url")
        self.url = spec.url.rstrip("/")
        self.remote_model = spec.remote_model or spec.id
        self.info = RemoteInfo()
        self.path = self.url
        self.n_ctx = spec.n_ctx
        self.n_gpu_layers = 0
        self.load_seconds = 0.0
        self.lock = threading.Lock()
        self._key = api_key(spec.api_key_env, spec.keyring_service)
        self.read_timeout = spec.timeout or READ_TIMEOUT_S

    @property
    def family(self) -> str:
        return self.spec.family or f"remote ({self.remote_model})"

    def set_threads(self, n: int) -> None:  # the server decides
        pass

    def close(self) -> None:
        pass

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self._key:
            h["Authorization"] = f"Bearer {self._key}"
        return h

    def _error(
        self, e: httpx.HTTPError, timeout: str, failed: str, cut: str | None = None
    ) -> RemoteError:
        """One message for each way HTTP fails: unreachable, silent for too long (*timeout*),
        cut off mid-answer (*cut*: how far it got; without it, such a failure is *failed*)."""
        if isinstance(e, httpx.ConnectError):
            return RemoteError(f"cannot reach the server at {self.url} ({_why(e)})")
        if isinstance(e, httpx.TimeoutException):
            return RemoteError(f"the server at {self.url} {timeout}")
        if cut is not None and isinstance(e, httpx.RemoteProtocolError | httpx.ReadError):
            return RemoteError(
                f"the server at {self.url} stopped in the middle of the answer, {cut} ({_why(e)})"
            )
        return RemoteError(f"{failed}: {_why(e)}")

    def check(self) -> None:
        """Reach the server and find the model; a clear error otherwise."""
        try:
            r = httpx.get(f"{self.url}/models", headers=self._headers(), timeout=CONNECT_TIMEOUT_S)
        except httpx.HTTPError as e:
            raise self._error(
                e,
                timeout=f"did not answer within {CONNECT_TIMEOUT_S:g} s",
                failed=f"the server at {self.url} failed",
            ) from e
        if r.status_code == 401:
            raise RemoteError(
                f"the server at {self.url} wants an API key: set {self.spec.api_key_env or 'api_key_env in the catalog'}"
            )
        if r.status_code != 200:
            raise RemoteError(f"the server at {self.url} answered HTTP {r.status_code} to /models")
        names = [m.get("id") for m in r.json().get("data", [])]
        if names and self.remote_model not in names:
            raise RemoteError(
                f"the server at {self.url} has no model {self.remote_model!r} (it has: {', '.join(map(str, names))})"
            )

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
        """Stream a completion; fill *outcome* (text, finish reason, stats) as it goes. The
        stream stops on *cancel*, and after the token just yielded when the consumer sets
        `outcome.interrupt` (a closed search query), as the engine does."""
        body = self._body(payload, endpoint, sampling)
        path = "/chat/completions" if endpoint == "chat" else "/completions"
        t0 = time.perf_counter()
        ttft = None
        n = 0
        text = ""
        logprobs: list[float] = []
        finish: FinishReason = "length"
        timeout = httpx.Timeout(self.read_timeout, connect=CONNECT_TIMEOUT_S)
        try:
            with httpx.stream(
                "POST", self.url + path, json=body, headers=self._headers(), timeout=timeout
            ) as r:
                if r.status_code != 200:
                    r.read()
                    raise RemoteError(f"the server answered HTTP {r.status_code}: {_short(r.text)}")
                for line in r.iter_lines():
                    if outcome.interrupt:  # the lane runner stops here (a closed query)
                        finish = "tool"
                        break
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        chunk = json.loads(data)
                    except json.JSONDecodeError:
                        continue
                    if "error" in chunk:
                        raise RemoteError(
                            f"the server reported an error: {_short(str(chunk['error']))}"
                        )
                    choice = (chunk.get("choices") or [{}])[0]
                    for piece, lp, top in _pieces(choice, endpoint):
                        if ttft is None:
                            ttft = time.perf_counter() - t0
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
                    if choice.get("finish_reason"):
                        finish = _finish_reason(choice["finish_reason"])
                else:
                    if finish == "length" and n < sampling.max_tokens:
                        raise RemoteError(
                            f"the server closed the stream after {n} tokens without finishing"
                        )
        except httpx.HTTPError as e:
            raise self._error(
                e,
                timeout=f"sent nothing for {self.read_timeout:g} s after {n} tokens",
                failed=f"the request to {self.url} failed",
                cut=f"after {n} tokens",
            ) from e
        finally:
            outcome.text = text
        total = time.perf_counter() - t0
        outcome.finish_reason = finish
        outcome.answer_ids = []
        outcome.stats = Stats.streamed(n, ttft, total, logprobs, complete=len(logprobs) == n)
        outcome.has_logprobs = bool(logprobs)


def _is_finish_reason(reason: object) -> TypeGuard[FinishReason]:
    return reason in FINISH_REASONS


def _finish_reason(reason: object) -> FinishReason:
    """A server's finish reason: the OpenAI API's (stop, length, content_filter, tool_calls,
    function_call) as it is; one outside the API reads as "stop" (the server ended the answer)."""
    return reason if _is_finish_reason(reason) else "stop"


def _pieces(choice: Json, endpoint: str) -> Iterator[tuple[str, float | None, list[Alternative]]]:
    """(text, logprob, top alternatives) for each token in a streamed chunk."""
    if endpoint == "chat":
        content = (choice.get("delta") or {}).get("content")
        lp = (choice.get("logprobs") or {}).get("content") if choice.get("logprobs") else None
        if lp:
            for item in lp:
                top = [
                    Alternative(SERVER_TOKEN, t.get("token", ""), t.get("logprob", math.nan))
                    for t in item.get("top_logprobs") or []
                ]
                yield item.get("token", ""), item.get("logprob"), top
        elif content:
            yield content, None, []
        return
    text = choice.get("text") or ""
    lp = choice.get("logprobs")
    if lp and lp.get("tokens"):
        tops = lp.get("top_logprobs") or [None] * len(lp["tokens"])
        for tok, p, top in zip(
            lp["tokens"], lp.get("token_logprobs") or [None] * len(lp["tokens"]), tops, strict=False
        ):
            alts = [
                Alternative(SERVER_TOKEN, k, v)
                for k, v in sorted((top or {}).items(), key=lambda kv: -kv[1])
            ]
            yield tok, p, alts
    elif text:
        yield text, None, []


def _why(e: Exception) -> str:
    return _short(str(e) or type(e).__name__)


def _short(s: str, n: int = 200) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"
