"""Scores and calibration metrics (definitions in shared/SCIENCE.md, sections 2, 4 and 5)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

TARGETS = (0.0, 0.5, 0.75, 0.9)


class SimpleQA(TypedDict):
    """SimpleQA's summary of a run's outcomes: shares of all answers, and accuracy and F."""

    n: int
    correct: float
    incorrect: float
    not_attempted: float
    accuracy_given_attempted: float
    f: float


class ReliabilityBin(TypedDict):
    """One non-empty confidence bin of a reliability diagram."""

    bin: tuple[float, float]
    n: int
    confidence: float
    accuracy: float


def penalty(t: float) -> float:
    return t / (1.0 - t)


def simpleqa(outcomes: Sequence[str]) -> SimpleQA:
    n = len(outcomes)
    c = sum(o == "correct" for o in outcomes)
    i = sum(o == "incorrect" for o in outcomes)
    na = n - c - i
    attempted = c + i
    acc_att = c / attempted if attempted else 0.0
    share_c = c / n if n else 0.0
    f = 2 * share_c * acc_att / (share_c + acc_att) if share_c + acc_att else 0.0
    return {
        "n": n,
        "correct": c / n if n else 0.0,
        "incorrect": i / n if n else 0.0,
        "not_attempted": na / n if n else 0.0,
        "accuracy_given_attempted": acc_att,
        "f": f,
    }


def target_score(outcomes: Sequence[str], t: float) -> float:
    """Mean score with confidence target t: +1 correct, 0 abstained, -t/(1-t) wrong."""
    if not outcomes:
        return 0.0
    p = penalty(t)
    return sum(1.0 if o == "correct" else -p if o == "incorrect" else 0.0 for o in outcomes) / len(
        outcomes
    )


def span_logprobs(pieces: Sequence[tuple[str, float]], span: tuple[int, int]) -> list[float]:
    """Log-probabilities of the tokens whose text overlaps the character span of the answer
    (pieces: each token's text and log-probability, in order; NaN where none was given)."""
    start, end = span
    out: list[float] = []
    pos = 0
    for text, lp in pieces:
        lo, hi = pos, pos + len(text)
        pos = hi
        if hi > start and lo < end and not math.isnan(lp):
            out.append(lp)
    return out


def ece(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error over equal-width bins: sum (n_b / n) |acc_b - conf_b|."""
    n = len(confidences)
    if n == 0:
        return 0.0
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [
            k for k, c in enumerate(confidences) if (lo <= c < hi) or (b == bins - 1 and c == 1.0)
        ]
        if not idx:
            continue
        acc = sum(correct[k] for k in idx) / len(idx)
        conf = sum(confidences[k] for k in idx) / len(idx)
        total += len(idx) / n * abs(acc - conf)
    return total


def brier(confidences: Sequence[float], correct: Sequence[bool]) -> float:
    if not confidences:
        return 0.0
    return sum((c - float(y)) ** 2 for c, y in zip(confidences, correct, strict=True)) / len(
        confidences
    )


def auroc(confidences: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Probability that a correct answer has higher confidence than an incorrect one (ties 1/2)."""
    pos = [c for c, y in zip(confidences, correct, strict=True) if y]
    neg = [c for c, y in zip(confidences, correct, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = 0.0
    for p in pos:
        for q in neg:
            wins += 1.0 if p > q else 0.5 if p == q else 0.0
    return wins / (len(pos) * len(neg))


def reliability(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> list[ReliabilityBin]:
    out: list[ReliabilityBin] = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [
            k for k, c in enumerate(confidences) if (lo <= c < hi) or (b == bins - 1 and c == 1.0)
        ]
        if idx:
            out.append(
                {
                    "bin": (lo, hi),
                    "n": len(idx),
                    "confidence": sum(confidences[k] for k in idx) / len(idx),
                    "accuracy": sum(correct[k] for k in idx) / len(idx),
                }
            )
    return out


def best_threshold_error(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, float]:
    """Lowest error of the classifier 'valid if score >= threshold' and that threshold."""
    pairs = sorted(zip(scores, labels, strict=True))
    n = len(pairs)
    if n == 0:
        return 0.0, 0.0
    # threshold below everything: all predicted valid
    errors = sum(1 for _, y in pairs if not y)
    best, best_t = errors, pairs[0][0] - 1e-9
    for k, (s, y) in enumerate(pairs):
        errors += 1 if y else -1  # this item is now predicted invalid
        if k + 1 < n and pairs[k + 1][0] == s:
            continue
        if errors < best:
            best, best_t = errors, s + 1e-9
    return best / n, best_t
