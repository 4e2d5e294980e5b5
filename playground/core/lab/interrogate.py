"""Knowledge probing after Llama 3 (section 4.3.6): where does the model's knowledge end?

1. Take snippets from documents (the shipped corpus by default, or the user's files).
2. Make a question and its answer from each snippet. The default models are too small to write good
   questions, so this uses extraction templates: for the shipped corpus, the question templates its
   facts were written from; for other documents, sentences of the form "X is/was Y."
3. Sample the model under test several times without the snippet; grade each answer against the
   snippet's answer; classify the question as known (all informative answers right), unknown (all
   wrong or no attempt) or inconsistent (mixed).
4. Write chat-format SFT data: the right answer where the model knows, a refusal where it does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from playground.core.engine import Sampling
from playground.core.errors import PlaygroundError
from playground.core.lab.grading import CORRECT, Outcome, grade
from playground.core.lab.probes import Probe, facts, sample, stratified_sample

if TYPE_CHECKING:
    from playground.core.playground import Playground

REFUSAL = "I don't know the answer to that."
_SENTENCE = re.compile(
    r"(?:^|(?<=[.!?]\s))((?:The )?[A-Z][\w'’-]*(?: [A-Z][\w'’-]*){0,5}) (is|was) ((?:the|a|an) [^.!?]{3,120})[.]"
)


# What the samples say about a question: all informative answers right, none right, or mixed.
Knowledge = Literal["known", "unknown", "inconsistent"]


class Interrogation(TypedDict):
    """One snippet's question, the model's sampled answers, their grades and the verdict."""

    question: str
    answers: list[str]
    snippet: str
    source: str
    grades: list[Outcome]
    samples: list[str]
    status: Knowledge


class ChatMessage(TypedDict):
    role: str
    content: str


class ChatRecord(TypedDict):
    """One chat-format SFT example."""

    messages: list[ChatMessage]


@dataclass
class Snippet:
    text: str
    question: str
    answers: tuple[str, ...]
    source: str
    category: str = ""


def snippet_stratum(s: Snippet) -> tuple[str, str]:
    """A snippet's stratum for `--limit`: its category (corpus) or its document."""
    return "fact", s.category or s.source


def from_corpus(limit: int | None = None, seed: int = 0) -> list[Snippet]:
    """Questions from the shipped facts: a seeded sample of `limit`, stratified by category."""
    out: list[Snippet] = []
    for p in sample(facts(), limit, seed):
        out.append(
            Snippet(
                p.meta["statement"],
                p.question,
                p.answers,
                "playground encyclopedia",
                p.meta["category"],
            )
        )
    return out


def from_docs(paths: list[Path], limit: int | None = None, seed: int = 0) -> list[Snippet]:
    out: list[Snippet] = []
    for path in paths:
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for f in files:
            if not f.is_file() or f.suffix.lower() not in (".md", ".txt", ".html", ".htm"):
                continue
            try:
                text = f.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError) as e:
                raise PlaygroundError(f"{f}: cannot read it as UTF-8 text ({e})") from e
            for m in _SENTENCE.finditer(re.sub(r"\s+", " ", text)):
                subject, verb, predicate = m.group(1), m.group(2), m.group(3)
                q = (
                    f"What {verb} {subject}?"
                    if not subject.startswith("The ")
                    else f"What {verb} {subject[0].lower() + subject[1:]}?"
                )
                out.append(Snippet(m.group(0).strip(), q, (predicate,), str(f)))
    if not out:
        raise PlaygroundError(
            "found no sentences of the form 'X is a ...' in the documents to make questions from"
        )
    return stratified_sample(out, limit, seed, snippet_stratum)


def interrogate(
    pg: Playground,
    snippets: list[Snippet],
    samples: int = 4,
    max_tokens: int = 48,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> list[Interrogation]:
    """Classify each snippet's question as known / unknown / inconsistent for the first lane."""
    lane = pg.lanes[0]
    pg.fresh_prompts = True  # a question's samples must not depend on the questions before it
    out: list[Interrogation] = []
    for i, sn in enumerate(snippets):
        probe = Probe(sn.question, sn.answers, "fact", f"snippet-{i}")
        grades: list[Outcome] = []
        answers: list[str] = []
        for k in range(samples):
            pg.reset_conversations()
            [r] = pg.ask(
                sn.question,
                Sampling(temperature=1.0, seed=seed * 1000 + k, max_tokens=max_tokens),
                lanes=[lane.index],
            )
            if r.status == "error":
                raise PlaygroundError(f"{lane.spec.text} failed: {r.error}")
            grades.append(grade(probe, r.text)["outcome"])
            answers.append(r.text.strip())
        informative = [g for g in grades if g != "not_attempted"]
        status: Knowledge
        if informative and all(g == CORRECT for g in informative):
            status = "known"
        elif all(g != CORRECT for g in grades):
            status = "unknown"
        else:
            status = "inconsistent"
        out.append(
            {
                "question": sn.question,
                "answers": list(sn.answers),
                "snippet": sn.text,
                "source": sn.source,
                "grades": grades,
                "samples": answers,
                "status": status,
            }
        )
        if progress:
            progress(i + 1, len(snippets))
    return out


def sft_records(results: list[Interrogation]) -> list[ChatRecord]:
    """Chat-format SFT data: a refusal for unknown questions, the right answer for known ones."""
    recs: list[ChatRecord] = []
    for r in results:
        if r["status"] == "known":
            answer = r["snippet"]
        elif r["status"] == "unknown":
            answer = REFUSAL
        else:
            continue
        recs.append(
            {
                "messages": [
                    {"role": "user", "content": r["question"]},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return recs


def write_jsonl(records: Iterable[Mapping[str, object]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
