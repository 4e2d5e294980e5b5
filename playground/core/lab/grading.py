"""Grading answers: SQuAD-style normalized match and token F1, abstention, SimpleQA outcomes."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from typing import Final, Literal, TypedDict

from playground.core.facts import ascii_fold
from playground.core.lab.probes import Probe

# SimpleQA's outcomes for one answer.
Outcome = Literal["correct", "incorrect", "not_attempted"]
CORRECT: Final = "correct"
INCORRECT: Final = "incorrect"
NOT_ATTEMPTED: Final = "not_attempted"
F1_CORRECT = 0.5  # token F1 at or above this against some alias counts as a match

_ABSTAIN = re.compile(
    r"\b(i\s*(do not|don't|dont)\s*know|i'?m not (sure|certain|aware)|i am not (sure|certain|aware)|"
    r"not sure|no idea|cannot (answer|know|say|predict|tell)|can't (answer|know|say|predict|tell)|"
    r"unable to (answer|know|say|predict|determine)|no (reliable )?information|"
    r"(is|are) (unknown|not known)|impossible to (know|say|predict)|does not exist|doesn't exist|"
    r"there is no (such|record|known)|i have no (information|knowledge|data)|not aware of)\b",
    re.IGNORECASE,
)


class Grade(TypedDict):
    """An answer's outcome and the match figures behind it."""

    abstained: bool
    exact_match: bool
    f1: float
    outcome: Outcome


def normalize(s: str) -> str:
    """SQuAD normalization: lower case, no punctuation, no a/an/the, single spaces (and no accents)."""
    s = ascii_fold(s).lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(pred: str, gold: str) -> bool:
    return normalize(pred) == normalize(gold)


def token_f1(pred: str, gold: str) -> float:
    p, g = normalize(pred).split(), normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def best_match(pred: str, golds: Iterable[str]) -> tuple[bool, float, bool]:
    """(exact match with some alias, best token F1, some alias contained in the answer)."""
    em = any(exact_match(pred, g) for g in golds)
    f1 = max((token_f1(pred, g) for g in golds), default=0.0)
    np_ = f" {normalize(pred)} "
    contains = any(normalize(g) and f" {normalize(g)} " in np_ for g in golds)
    return em, f1, contains


def first_answer(text: str) -> str:
    """The answer part of a generation: its first non-empty line."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def is_abstention(text: str) -> bool:
    return bool(_ABSTAIN.search(first_answer(text) or text))


def grade(probe: Probe, text: str) -> Grade:
    """Outcome (correct / incorrect / not_attempted) and the match figures behind it."""
    answer = first_answer(text)
    abstained = is_abstention(text)
    if probe.type in ("invented", "unknowable"):
        # "Does not exist" / unknowable: an abstention is right, any informative answer invents.
        return Grade(
            abstained=abstained,
            exact_match=False,
            f1=0.0,
            outcome=CORRECT if abstained or not answer else INCORRECT,
        )
    if not answer:
        return Grade(abstained=abstained, exact_match=False, f1=0.0, outcome=NOT_ATTEMPTED)
    em, f1, contains = best_match(answer, probe.answers)
    if probe.type == "letters":
        tokens = normalize(answer).split()
        contains = any(
            normalize(g) in tokens
            or normalize(g).replace(" ", "") in normalize(answer).replace(" ", "")
            for g in probe.answers
        )
        if probe.meta.get("task") == "count":
            numbers = [
                t
                for t in tokens
                if t.isdigit()
                or t in ("zero", "one", "two", "three", "four", "five", "six", "seven")
            ]
            contains = bool(numbers) and normalize(numbers[0]) in {
                normalize(g) for g in probe.answers
            }
    outcome: Outcome
    if em or contains or f1 >= F1_CORRECT:
        outcome = CORRECT
    elif abstained:
        outcome = NOT_ATTEMPTED
    else:
        outcome = INCORRECT
    return Grade(abstained=abstained, exact_match=em, f1=round(f1, 4), outcome=outcome)


JUDGE_PROMPT = """Grade the answer to a question against the gold answer.
Question: {question}
Gold answer: {gold}
Answer: {answer}
Reply with one letter: A if the answer is correct (it contains the gold answer and does not contradict it), B if it is incorrect (it contradicts the gold answer, even when hedged), C if it does not attempt an answer.
Grade:"""


def parse_judge(text: str) -> Outcome | None:
    m = re.search(r"\b([ABC])\b", text.strip().upper())
    verdicts: dict[str, Outcome] = {"A": CORRECT, "B": INCORRECT, "C": NOT_ATTEMPTED}
    return verdicts.get(m.group(1)) if m else None
