"""A backend that replays a script, so the generation loop runs without a model (llm's MockModel
is the idea): the search loop, stop sequences, cancel and every error path in the fast tier."""

from __future__ import annotations

from collections.abc import Iterator

from playground.core.engine import Outcome, Sampling, StopText
from playground.core.events import Stats, Token
from playground.core.playground import Playground
from playground.core.run import Prompt, Totals

FAKE_MODEL = object()  # stands for a loaded model: Playground never loads one for a fake lane


class FakeBackend:
    """Each segment of the script is the token texts one stream yields (an exception in the list
    is raised at that point); a segment ends with eos, or earlier on a stop sequence, the token
    limit, cancel, or a closed query. What the loop injects and keeps is recorded."""

    reports_cache = True

    def __init__(self, *segments: list, model_id: str = "fake", stops: list[str] | None = None):
        self.segments = [list(s) for s in segments]
        self.model_id = model_id
        self.stops = list(stops or [])
        self.logprob = -0.25
        self.question = ""
        self.prompt = Prompt("")
        self.answer = ""  # the answer so far as the model would see it: its text and the blocks
        self.contexts: list[str] = []  # the answer so far at the start of each segment
        self.injected: list[str] = []
        self.turns: list[tuple[str, str]] = []
        self._segment_text = ""
        self._ids = 0

    def count(self, text: str) -> int:
        return max(1, len(text) // 4)

    def prepare(self, question: str, sampling: Sampling) -> Prompt:
        self.question = question
        text = f"Q: {question}\nA:"
        self.prompt = Prompt(text, list(range(len(text.split()))), [False] * len(text.split()))
        self.prompt.stops = list(self.stops)
        return self.prompt

    def exchange_fields(self, prompt: Prompt) -> dict:
        return {
            "model_id": self.model_id,
            "model_kind": "base",
            "prompt_text": prompt.text,
            "prompt_token_ids": prompt.token_ids,
            "prompt_special": [int(s) for s in prompt.special],
            "prompt_tokens": len(prompt.token_ids),
        }

    def prefill(self, text: str) -> bool:
        self.answer = text
        return True

    def stream(
        self, sampling: Sampling, outcome: Outcome, cancel, first: bool, t0: float
    ) -> Iterator[Token]:
        self.contexts.append(self.answer)
        pieces = self.segments.pop(0) if self.segments else []
        outcome.evaluated = len(self.prompt.token_ids) if first else len(self.answer) // 4
        out = StopText(sampling.stop)
        self._segment_text = ""
        finish = "eos"
        for i, piece in enumerate(pieces):
            if i >= sampling.max_tokens:
                finish = "length"
                break
            if cancel.is_set():
                finish = "cancelled"
                break
            if isinstance(piece, BaseException):
                raise piece
            self._ids += 1
            outcome.token_ids.append(self._ids)
            self._segment_text += piece
            yield Token("", i, self._ids, piece, out.add(piece), self.logprob, [], 0.0)
            if out.stopped:
                finish = "stop"
                break
            if outcome.interrupt:
                finish = "tool"
                break
        if not out.stopped and (rest := out.rest()):
            yield Token("", len(outcome.token_ids), -1, "", rest, 0.0, [], 0.0)
        outcome.text = out.answer
        outcome.answer_ids = list(outcome.token_ids)
        outcome.finish_reason = finish
        outcome.stats = Stats(len(self.prompt.token_ids), 0, 0, 0, 0, 0.01, None, 0.0, None)

    def stopped_for_query(self, outcome: Outcome) -> bool:
        return outcome.finish_reason == "tool"

    def keep_segment(self, outcome: Outcome) -> None:
        self.answer += self._segment_text

    def budget(self) -> int:
        return 100

    def inject(self, block: str) -> tuple[int, str | None]:
        self.injected.append(block)
        self.answer += block
        return self.count(block), None

    def keep_invented(self, outcome: Outcome, shown: str) -> None:
        self.answer += shown

    def keep_answer(self, outcome: Outcome) -> None:
        self.answer += outcome.text

    def stats(self, totals: Totals) -> Stats | None:
        if totals.first is None:
            return None
        lps = totals.logprobs
        return Stats(
            prompt_tokens=len(self.prompt.token_ids),
            evaluated=totals.first.evaluated,
            reused=totals.first.reused,
            completion_tokens=totals.tokens,
            answer_tokens=totals.tokens,
            time_to_first_token=totals.first_token_s,
            tokens_per_second=None,
            total_seconds=totals.total_s,
            mean_logprob=sum(lps) / len(lps) if lps else None,
        )

    def commit(self) -> None:
        self.turns.append((self.question, self.answer))


class FakePlayground(Playground):
    """A Playground whose lanes answer from scripts: `fakes[i]` is lane i's backend."""

    def __init__(self, *args, fakes: list[FakeBackend], **kwargs):
        self.fakes = fakes
        super().__init__(*args, **kwargs)

    def add_lane(self, spec):
        lane = super().add_lane(spec)
        if lane.model_spec is not None:
            lane.model = FAKE_MODEL
        return lane

    def backend_for(self, lane, threads):
        fake = self.fakes[lane.index]
        fake.answer = ""
        return fake
