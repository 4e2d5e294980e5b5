"""Scores and calibration metrics (definitions in shared/SCIENCE.md, sections 2, 4 and 5)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypedDict

import numpy as np
from numpy.typing import ArrayLike

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
    correct: int
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


def _bins(conf: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each confidence: [b/bins, (b+1)/bins), the last one closed at 1."""
    out: np.ndarray = np.minimum(np.floor(conf * bins), bins - 1).astype(np.int64)
    return out


def ece(confidences: ArrayLike, correct: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error over equal-width bins: sum (n_b / n) |acc_b - conf_b|."""
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    n = conf.size
    if n == 0:
        return 0.0
    b = _bins(conf, bins)
    count = np.bincount(b, minlength=bins)
    gap = np.bincount(b, weights=ok, minlength=bins) - np.bincount(b, weights=conf, minlength=bins)
    # sum over bins of (n_b / n) |acc_b - conf_b| = sum |sum_b(ok) - sum_b(conf)| / n
    return float(np.abs(gap[count > 0]).sum() / n)


def brier(confidences: ArrayLike, correct: ArrayLike) -> float:
    conf = np.asarray(confidences, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    return float(np.mean((conf - np.asarray(correct, dtype=np.float64)) ** 2))


def auroc(confidences: ArrayLike, correct: ArrayLike) -> float | None:
    """Probability that a correct answer has higher confidence than an incorrect one (ties 1/2),
    from the rank sum (Mann-Whitney U); None without both correct and incorrect answers."""
    x = np.asarray(confidences, dtype=np.float64)
    y = np.asarray(correct, dtype=bool)
    if x.size != y.size:
        raise ValueError("confidences and outcomes differ in length")
    pos = int(y.sum())
    neg = y.size - pos
    if pos == 0 or neg == 0:
        return None
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # ranks from 1, ties share the mean
    u = float(average_rank[inverse][y].sum()) - pos * (pos + 1) / 2.0
    return u / (pos * neg)


def reliability(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> list[ReliabilityBin]:
    """The non-empty bins of a reliability diagram, each with its count, mean confidence, accuracy."""
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    out: list[ReliabilityBin] = []
    b = _bins(conf, bins) if conf.size else np.zeros(0, dtype=np.int64)
    for k in range(bins):
        sel = b == k
        m = int(sel.sum())
        if m:
            out.append(
                {
                    "bin": (k / bins, (k + 1) / bins),
                    "n": m,
                    "correct": int(ok[sel].sum()),
                    "confidence": float(conf[sel].mean()),
                    "accuracy": float(ok[sel].mean()),
                }
            )
    return out


def best_threshold_error(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, float]:
    """Lowest error of the classifier 'valid if score >= threshold' and that threshold (midway
    between the two scores it separates)."""
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
            # midway to the next score: a threshold fitted on one half generalizes to the other
            best, best_t = errors, (s + pairs[k + 1][0]) / 2 if k + 1 < n else s + 1e-9
    return best / n, best_t


# -- uncertainty ------------------------------------------------------------------------------

MIN_CLASS = (
    10  # a calibration cell with fewer correct or fewer wrong answers than this is "too few"
)
BOOTSTRAP_RESAMPLES = 1000


def too_few(correct: Sequence[bool], least: int = MIN_CLASS) -> bool:
    """Whether a cell has fewer than *least* correct or fewer than *least* wrong answers: its AUROC
    and ECE then move a lot with one answer (AUROC 1.000 at n = 4 says nothing)."""
    k = sum(bool(y) for y in correct)
    return k < least or len(correct) - k < least


def bootstrap(
    stat: Callable[[np.ndarray], float | None],
    n: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile 95% interval of *stat* over *resamples* resamplings (with replacement) of the
    indices 0..n-1, drawn by numpy's default generator with *seed* (the same seed, the same
    interval). Resamples where the statistic is undefined (None: e.g. AUROC with one class) are
    left out; None when fewer than half of them give a value, or n is 0."""
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    values = [v for row in draws if (v := stat(row)) is not None]
    if len(values) < resamples / 2:
        return None
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), [2.5, 97.5])
    return float(lo), float(hi)


# -- self-consistency -------------------------------------------------------------------------


def clusters(answers: Sequence[str], same: Callable[[str, str], bool]) -> list[list[int]]:
    """Group answers into clusters of equivalent ones: each answer joins the first cluster whose
    first member it is equivalent to, or starts its own (Farquhar et al. 2024)."""
    out: list[list[int]] = []
    for i, a in enumerate(answers):
        for c in out:
            if same(answers[c[0]], a):
                c.append(i)
                break
        else:
            out.append([i])
    return out


def semantic_entropy(answers: Sequence[str], same: Callable[[str, str], bool]) -> float | None:
    """-sum (|C|/N) log(|C|/N) over clusters of equivalent answers; 0 when all agree."""
    if not answers:
        return None
    n = len(answers)
    return 0.0 - sum(len(c) / n * math.log(len(c) / n) for c in clusters(answers, same))


def held_out_error(
    values: Sequence[float], labels: Sequence[bool], seed: int = 0
) -> tuple[float, float, float]:
    """2-fold cross-validated error of "valid if score >= threshold": the true and the false items
    are each shuffled with *seed* and halved, the threshold is fitted on one fold and its errors
    counted on the other, both ways. Returns (held-out error, error on fold 1, error on fold 2);
    the best-threshold error on the same items it was fitted to is optimistic."""
    rng = np.random.default_rng(seed)
    pos = [i for i, y in enumerate(labels) if y]
    neg = [i for i, y in enumerate(labels) if not y]
    rng.shuffle(pos)
    rng.shuffle(neg)
    folds = (
        pos[: len(pos) // 2] + neg[: len(neg) // 2],
        pos[len(pos) // 2 :] + neg[len(neg) // 2 :],
    )
    wrong: list[int] = []
    for fit, test in (folds, folds[::-1]):
        _, threshold = best_threshold_error([values[i] for i in fit], [labels[i] for i in fit])
        wrong.append(sum((values[i] >= threshold) != labels[i] for i in test))
    n = len(values)
    return (
        sum(wrong) / n if n else 0.0,
        wrong[1] / len(folds[0]) if folds[0] else 0.0,
        wrong[0] / len(folds[1]) if folds[1] else 0.0,
    )
