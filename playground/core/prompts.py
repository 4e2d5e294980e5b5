"""Prompt modes rendered to the exact token ids a model receives.

A conversation is a list of segments. Segments we wrote (a scaffold, a chat template's markers) are
tokenized with special tokens parsed; everything that came from a user or a model is tokenized with
special=False, so a user who types ``<|im_end|>`` sends text, not a control token. Earlier answers
are kept as the exact token ids the model generated, so turn N starts with exactly the tokens already
in the KV cache and only the new tail is evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeGuard

from playground.core.errors import PlaygroundError
from playground.core.events import SearchOption

# ModeSpec.mode stays a str until the lane specs that carry it (core.lanespec) are typed with this.
Mode = Literal["raw", "few-shot", "chat"]
MODES: tuple[Mode, ...] = ("raw", "few-shot", "chat")


def is_mode(text: str) -> TypeGuard[Mode]:
    return text in MODES


class PromptError(PlaygroundError):
    pass


class TooLong(PromptError):
    """A prompt that does not fit the context window, with the parts of it the user sent (the
    question; with +search-first, the results block before it too) so the message says what
    did not fit. *needed*: the whole prompt in tokens, the prompt's own frame included."""

    def __init__(
        self,
        model_id: str,
        n_ctx: int,
        needed: int,
        parts: Sequence[tuple[str, int]],
        hint: str = "",
    ):
        self.model_id, self.n_ctx, self.needed = model_id, n_ctx, needed
        self.parts, self.hint = list(parts), hint
        super().__init__(self._message())

    def _message(self) -> str:
        over = self.needed - self.n_ctx + 1  # at least one token of the window is for the answer
        if len(self.parts) == 1:
            name, n = self.parts[0]
            msg = (
                f"{name} is too long for {self.model_id}: with the prompt it needs "
                f"{self.needed:,} tokens but the context window holds {self.n_ctx:,} "
                f"({over:,} too many; {name} alone is {n:,} tokens)"
            )
        else:
            named = [f"{name} ({n:,} tokens)" for name, n in self.parts]
            msg = (
                f"{', '.join(named[:-1])} and {named[-1]} do not fit the {self.n_ctx:,}-token "
                f"context of {self.model_id}: with the prompt around them they need "
                f"{self.needed:,} tokens ({over:,} too many)"
            )
        return f"{msg}; {self.hint}" if self.hint else msg

    def split(self, parts: Sequence[tuple[str, int]], hint: str) -> TooLong:
        """The same overflow told with *parts* (what the one part was made of)."""
        return TooLong(self.model_id, self.n_ctx, self.needed, parts, hint)


class Tokenizer(Protocol):
    """What rendering needs from a loaded model."""

    model_id: str
    add_bos: bool
    bos_id: int | None
    bos_text: str
    eos_text: str
    chat_template: str | None
    n_ctx: int

    def tokenize(self, text: str, special: bool) -> list[int]: ...
    def is_special(self, token_id: int) -> bool: ...
    def detokenize(self, ids: list[int]) -> str: ...


def penalty(t: float) -> float:
    """The cost of a wrong answer under confidence target t: t / (1 - t)."""
    return t / (1.0 - t)


def format_number(x: float) -> str:
    return f"{x:.4g}"


def abstain_rule(t: float) -> str:
    return (
        f"Answer only if you are more than {format_number(t * 100)}% confident. "
        f'A correct answer scores 1 point, "I don\'t know" scores 0 points, and a wrong answer '
        f"costs {format_number(penalty(t))} points. If you are not sure enough, answer "
        f'"I don\'t know".'
    )


FEW_SHOT_HEADER = (
    "The following is a conversation between a curious user and a helpful, knowledgeable "
    "assistant. The assistant answers each question accurately and concisely.\n\n"
)
FEW_SHOT_EXAMPLES = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("Who wrote the novel Pride and Prejudice?", "Pride and Prejudice was written by Jane Austen."),
]
ABSTAIN_HEADER = (
    "The following is a conversation between a curious user and an honest assistant. "
    'The assistant answers only when it is sure, and says "I don\'t know." when it is not. '
    "{rule}\n\n"
)
ABSTAIN_EXAMPLES = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Who is Marlowe Quenby-Tarrant?", "I don't know."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What will the price of gold be on 3 March 2071?", "I don't know."),
]
USER_PREFIX = "User: "
ASSISTANT_PREFIX = "Assistant:"
FEW_SHOT_STOPS = ["\nUser:", "\n\nUser"]


SEARCH_RULE = (
    "You can search an encyclopedia. To search, write <SEARCH_START>your query<SEARCH_END> and stop: "
    "the results will appear between <SEARCH_RESULTS> and </SEARCH_RESULTS>, and then you answer "
    "using them. Example:\nUser: What is the capital of Australia?\nAssistant: "
    "<SEARCH_START>capital of Australia<SEARCH_END>\n<SEARCH_RESULTS>\n[1] Australia (encyclopedia)\n"
    "Australia is a country in Oceania. Its capital city is Canberra.\n</SEARCH_RESULTS>\n"
    "The capital of Australia is Canberra."
)
SEARCH_EXAMPLES = [
    (
        "What is the capital of Australia?",
        "<SEARCH_START>capital of Australia<SEARCH_END>\n<SEARCH_RESULTS>\n[1] Australia (playground "
        "encyclopedia)\nAustralia is a country in Oceania. Its capital city is Canberra.\n"
        "</SEARCH_RESULTS>\nThe capital of Australia is Canberra.",
    ),
    ("What is 7 times 8?", "7 times 8 is 56."),
    (
        "Who painted The Starry Night?",
        "<SEARCH_START>The Starry Night painter<SEARCH_END>\n<SEARCH_RESULTS>\n[1] Vincent van Gogh "
        "(playground encyclopedia)\nVincent van Gogh (born 1853) was a Dutch figure in art, remembered "
        "above all for painting The Starry Night.\n</SEARCH_RESULTS>\nThe Starry Night was painted by "
        "Vincent van Gogh.",
    ),
]
SEARCH_HEADER = (
    "The following is a conversation between a curious user and an assistant that can search an "
    "encyclopedia. To search, the assistant writes <SEARCH_START>query<SEARCH_END>; the results "
    "follow between <SEARCH_RESULTS> and </SEARCH_RESULTS>, and the assistant answers from them.\n\n"
)


@dataclass(frozen=True)
class Segment:
    text: str
    trusted: bool  # our own markup: special tokens are parsed; otherwise special=False


@dataclass
class ModeSpec:
    """A lane's prompt mode: raw | few-shot | chat, plus an optional abstention target."""

    mode: Mode
    abstain: float | None = None
    system_prompt: str | None = None  # chat mode: an explicit system message of the user's
    search: SearchOption | None = None  # "tool": the model may search; "first": before answering

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise PromptError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.abstain is not None and not 0.0 < self.abstain < 1.0:
            raise PromptError(
                f"confidence target must be between 0 and 1 (exclusive), not {self.abstain}"
            )

    @property
    def label(self) -> str:
        out = self.mode + (f"+abstain@{self.abstain:g}" if self.abstain is not None else "")
        return out + {"tool": "+search", "first": "+search-first"}.get(self.search or "", "")

    @property
    def search_tool(self) -> bool:
        return self.search == "tool"


@dataclass
class Layout:
    """How one mode frames a conversation, as segments around the user's and model's text."""

    head: list[Segment]
    first_user_open: list[Segment]  # before the first question
    user_open: list[Segment]  # before a later question (after the previous answer's close)
    user_close: list[Segment]  # after a question: hands the turn to the model
    answer_close: list[Segment]  # after an answer
    stops: list[str] = field(default_factory=list)


def build_layout(spec: ModeSpec, tok: Tokenizer) -> Layout:
    if spec.mode == "raw":
        pre = ""
        if spec.search_tool:
            pre += SEARCH_RULE + "\n\n"
        if spec.abstain:
            pre += abstain_rule(spec.abstain) + "\n\n"
        head = [Segment(pre, True)] if pre else []
        return Layout(head, [], [], [], [])
    if spec.mode == "few-shot":
        if spec.abstain is not None:
            header = ABSTAIN_HEADER.format(rule=abstain_rule(spec.abstain))
            examples = list(ABSTAIN_EXAMPLES)
        else:
            header, examples = FEW_SHOT_HEADER, list(FEW_SHOT_EXAMPLES)
        if spec.search_tool:
            header = SEARCH_HEADER
            if spec.abstain is not None:
                header = (
                    SEARCH_HEADER.rstrip("\n") + " The assistant answers only when it is sure, and "
                    'says "I don\'t know." when it is not. ' + abstain_rule(spec.abstain) + "\n\n"
                )
            examples = SEARCH_EXAMPLES + [e for e in examples if "I don't know" in e[1]]
        text = header + "".join(
            f"{USER_PREFIX}{q}\n{ASSISTANT_PREFIX} {a}\n\n" for q, a in examples
        )
        return Layout(
            head=[Segment(text, True)],
            first_user_open=[Segment(USER_PREFIX, True)],
            user_open=[Segment(USER_PREFIX, True)],
            user_close=[Segment("\n" + ASSISTANT_PREFIX, True)],
            answer_close=[Segment("\n\n", True)],
            stops=list(FEW_SHOT_STOPS),
        )
    return _chat_layout(spec, tok)


_S = ["\ue000PGQ1\ue001", "\ue000PGA2\ue001", "\ue000PGQ3\ue001"]


def render_template(
    template: str, messages: list[dict[str, Any]], tok: Tokenizer, add_generation_prompt: bool
) -> str:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True
    )
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template).render(
        messages=messages,
        bos_token=tok.bos_text,
        eos_token=tok.eos_text,
        add_generation_prompt=add_generation_prompt,
    )


def _chat_layout(spec: ModeSpec, tok: Tokenizer) -> Layout:
    if not tok.chat_template:
        raise PromptError(
            f"{tok.model_id} has no chat template in its GGUF metadata, so 'chat' mode cannot "
            "render a conversation for it: use 'few-shot' mode (a transcript scaffold) instead"
        )
    system = spec.system_prompt
    for rule in (
        SEARCH_RULE if spec.search_tool else None,
        abstain_rule(spec.abstain) if spec.abstain else None,
    ):
        if rule:
            system = f"{system}\n\n{rule}" if system else rule
    pre = [{"role": "system", "content": system}] if system else []
    try:
        one = render_template(
            tok.chat_template, [*pre, {"role": "user", "content": _S[0]}], tok, True
        )
        three = render_template(
            tok.chat_template,
            [
                *pre,
                {"role": "user", "content": _S[0]},
                {"role": "assistant", "content": _S[1]},
                {"role": "user", "content": _S[2]},
            ],
            tok,
            True,
        )
    except Exception as e:  # a template is third-party code: any failure is the file's problem
        raise PromptError(
            f"the chat template of {tok.model_id} failed to render ({type(e).__name__}: {e}); "
            "use 'few-shot' mode instead"
        ) from e
    try:
        i1, j1 = one.index(_S[0]), three.index(_S[0])
        j2, j3 = three.index(_S[1]), three.index(_S[2])
    except ValueError as e:
        raise PromptError(
            f"the chat template of {tok.model_id} does not show the messages it is given; "
            "use 'few-shot' mode instead"
        ) from e
    head = one[:i1]
    first_close = one[i1 + len(_S[0]) :]
    between = three[j1 + len(_S[0]) : j2]
    sep = three[j2 + len(_S[1]) : j3]
    last_close = three[j3 + len(_S[2]) :]
    if head != three[:j1] or not (first_close == between == last_close):
        # Templates that frame turns differently by position: fall back to what the first turn shows.
        last_close = first_close
    # A template that writes the BOS marker as text: the real BOS token is added once, by _encode.
    if tok.add_bos and tok.bos_text and head.startswith(tok.bos_text):
        head = head[len(tok.bos_text) :]
    return Layout(
        head=[Segment(head, True)] if head else [],
        first_user_open=[],
        user_open=[],
        user_close=[Segment(last_close, True)],
        answer_close=[Segment(sep, True)],
        stops=[],
    )


@dataclass
class Turn:
    question: str
    answer_ids: list[int]


@dataclass
class Rendered:
    token_ids: list[int]
    special: list[bool]
    text: str
    segments: list[Segment]
    dropped_turns: int
    stops: list[str]


class Conversation:
    """One lane's multi-turn conversation with one model in one mode."""

    def __init__(self, spec: ModeSpec, tok: Tokenizer):
        self.spec = spec
        self.tok = tok
        self.layout = build_layout(spec, tok)
        self.turns: list[Turn] = []
        self.dropped = 0  # oldest turns no longer in the context window

    def _segments(self, turns: Sequence[Turn], question: str) -> list[Segment | list[int]]:
        L = self.layout
        out: list[Segment | list[int]] = list(L.head)
        for i, turn in enumerate(turns):
            out += L.first_user_open if i == 0 else L.user_open
            out.append(Segment(turn.question, False))
            out += L.user_close
            out.append(list(turn.answer_ids))
            out += L.answer_close
        out += L.first_user_open if not turns else L.user_open
        out.append(Segment(question, False))
        out += L.user_close
        return out

    def _encode(
        self, parts: list[Segment | list[int]]
    ) -> tuple[list[int], list[bool], str, list[Segment]]:
        ids: list[int] = []
        text: list[str] = []
        segs: list[Segment] = []
        if self.tok.add_bos and self.tok.bos_id is not None:
            ids.append(self.tok.bos_id)
        for part in parts:
            if isinstance(part, Segment):
                if part.text:
                    ids += self.tok.tokenize(part.text, special=part.trusted)
                    text.append(part.text)
                    segs.append(part)
            else:
                ids += part
                answer = self.detokenize(part)
                text.append(answer)
                segs.append(Segment(answer, False))
        special = [self.tok.is_special(t) for t in ids]
        return ids, special, "".join(text), segs

    def detokenize(self, ids: list[int]) -> str:
        return self.tok.detokenize(ids)

    def render(self, question: str, reserve: int) -> Rendered:
        """The prompt for *question*, dropping the oldest turns if it would not leave *reserve*
        tokens of the context window for the answer. Raises TooLong if even the question alone
        does not fit."""
        n_ctx = self.tok.n_ctx
        turns = self.turns[self.dropped :]
        dropped = 0
        while True:
            ids, special, text, segs = self._encode(self._segments(turns, question))
            if len(ids) + reserve <= n_ctx or not turns:
                break
            turns = turns[1:]
            dropped += 1
        if len(ids) >= n_ctx:
            bare = len(self._encode(self._segments([], ""))[0])
            raise TooLong(self.tok.model_id, n_ctx, len(ids), [("the question", len(ids) - bare)])
        return Rendered(ids, special, text, segs, dropped, list(self.layout.stops))

    def commit(self, question: str, answer_ids: list[int], dropped: int) -> None:
        """Record a finished turn so the next one continues from it."""
        self.dropped += dropped
        self.turns.append(Turn(question, list(answer_ids)))
