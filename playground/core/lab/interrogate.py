"""Knowledge probing after Llama 3 (section 4.3.6): where does the model's knowledge end?

1. Take snippets from documents (the shipped corpus by default, or the user's files).
2. Make a question and its answer from each snippet. The default models are too small to write good
   questions, so this uses extraction templates: for the shipped corpus, the question templates its
   facts were written from; for other documents, sentences of the form "X is/was Y."
3. Ask the model under test without the snippet: once greedily and several times with the lane's
   ordinary sampling settings (not T = 1 over a thousand tokens, which makes a small model's
   answers inconsistent by construction); grade each answer against the snippet's answer; classify
   the question as known (every informative answer right, the greedy one included), unknown (none
   right) or inconsistent (mixed).
4. Write chat-format SFT data: the right answer where the model knows, a refusal where it does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
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
    """One snippet's question, the model's greedy and sampled answers, their grades and the verdict."""

    question: str
    answers: list[str]
    snippet: str
    source: str
    greedy: str
    greedy_grade: Outcome
    grades: list[Outcome]  # of the samples
    samples: list[str]
    counts: dict[str, int]  # outcome -> answers (greedy and samples)
    status: Knowledge


# llama.cpp's default sampling: what a lane samples with when nobody changed its settings.
DEFAULT_SAMPLING = Sampling(temperature=0.8, top_p=0.95, top_k=40)


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


def knowledge(grades: list[Outcome]) -> Knowledge:
    """Known: every informative answer right (at least one); unknown: none right; else inconsistent."""
    informative = [g for g in grades if g != "not_attempted"]
    if informative and all(g == CORRECT for g in informative):
        return "known"
    if all(g != CORRECT for g in grades):
        return "unknown"
    return "inconsistent"


def interrogate(
    pg: Playground,
    snippets: list[Snippet],
    samples: int = 4,
    max_tokens: int = 48,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
    sampling: Sampling | None = None,
) -> list[Interrogation]:
    """Classify each snippet's question as known / unknown / inconsistent for the first lane, from
    its greedy answer and *samples* answers drawn with *sampling* (the lane's own settings when it
    has some, else DEFAULT_SAMPLING); sample k uses seed * 1000 + k."""
    lane = pg.lanes[0]
    base = lane.sampling or sampling or DEFAULT_SAMPLING
    pg.fresh_prompts = True  # a question's samples must not depend on the questions before it
    out: list[Interrogation] = []
    for i, sn in enumerate(snippets):
        probe = Probe(sn.question, sn.answers, "fact", f"snippet-{i}")
        grades: list[Outcome] = []
        answers: list[str] = []
        for k in range(samples + 1):
            pg.reset_conversations()
            if k == 0:
                s = Sampling(max_tokens=max_tokens)
            else:
                s = replace(base, seed=seed * 1000 + k, max_tokens=max_tokens, stop=list(base.stop))
            lane.sampling, saved = None, lane.sampling  # ask() would replace the greedy settings
            try:
                [r] = pg.ask(sn.question, s, lanes=[lane.index])
            finally:
                lane.sampling = saved
            if r.status == "error":
                raise PlaygroundError(f"{lane.spec.text} failed: {r.error}")
            grades.append(grade(probe, r.text)["outcome"])
            answers.append(r.text.strip())
        counts = {o: grades.count(o) for o in ("correct", "incorrect", "not_attempted")}
        out.append(
            {
                "question": sn.question,
                "answers": list(sn.answers),
                "snippet": sn.text,
                "source": sn.source,
                "greedy": answers[0],
                "greedy_grade": grades[0],
                "grades": grades[1:],
                "samples": answers[1:],
                "counts": counts,
                "status": knowledge(grades),
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
