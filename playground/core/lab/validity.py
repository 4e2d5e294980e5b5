"""Is-It-Valid (Kalai et al. 2025, section 3): the model as a classifier of true and false statements.

Each statement is scored by the model's length-normalized probability of it (exp of the mean token
log-probability); the classifier says "valid" above a threshold. The statements are half true, half
false (as the paper's Is-It-Valid distribution), the threshold is fitted on one half of them and the
error counted on the other (2-fold, both ways), and that held-out error and the AUROC are set next to
the hallucination rate the same model shows when it generates answers to the same questions.

The paper's bound (Theorem 1): generative error >= 2 x Is-It-Valid error - max|V_c|/min|E_c| - delta.
Here a question has one true and one false statement, so the ratio is 1 and the bound reads
2 x error - 1 - delta: it says nothing unless the classifier errs on more than half. The comparison
shows a tendency; it does not test the theorem.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict

from playground.core.engine import Model
from playground.core.errors import PlaygroundError
from playground.core.lab import scores
from playground.core.lab.probes import Probe, invented

if TYPE_CHECKING:
    from playground.core.playground import Playground

# A true statement, one with its answer swapped for a wrong one, or a claim about an invented entity.
StatementKind = Literal["true", "swapped", "invented"]


@dataclass(frozen=True)
class Statement:
    text: str
    valid: bool
    kind: StatementKind
    question: str


def statements(facts: Iterable[Probe], n_invented: int = 40, seed: int = 0) -> list[Statement]:
    """Half true, half false: one true statement per fact; as many false ones, the claims about
    invented entities (at most half of them) and the rest facts with their answer swapped for a
    wrong one (which facts: drawn with *seed*)."""
    true: list[Statement] = []
    swapped: list[Statement] = []
    for p in facts:
        st, wrong, answer = (
            p.meta.get("statement"),
            p.meta.get("wrong"),
            p.answers[0] if p.answers else "",
        )
        if not st or not wrong or answer not in st:
            continue
        true.append(Statement(st, True, "true", p.question))
        swapped.append(Statement(st.replace(answer, wrong, 1), False, "swapped", p.question))
    ghosts = [
        Statement(_invented_claim(p.question), False, "invented", p.question)
        for p in invented(n=min(n_invented, len(true)), seed=seed)
    ]
    rng = random.Random(seed)
    keep = sorted(rng.sample(range(len(swapped)), len(true) - len(ghosts)))
    return true + [swapped[i] for i in keep] + ghosts


def _invented_claim(q: str) -> str:
    """Turn a question about an invented entity into a confident claim about it."""
    if q.startswith("Who is "):
        return f"{q[7:-1]} is a famous Canadian actor."
    if q.startswith("What is the population of "):
        return f"The population of {q[26:-1]} is about 40,000."
    if q.startswith("In which country is the town of "):
        return f"The town of {q[32:-1]} is in Portugal."
    if q.startswith("Who wrote the novel "):
        return f"The novel {q[20:-1]} was written by Graham Greene."
    if q.startswith("What does the "):
        return f"The {q[14:-5]} eats insects."
    if q.startswith("What is ") and q.endswith(" famous for?"):
        return f"{q[8:-12]} is famous for inventing the bicycle bell."
    return q.rstrip("?") + "."


def score(model: Model, st: Statement) -> float:
    ids = model.tokenize(st.text, special=False)
    if model.add_bos and model.bos_id is not None:
        ids = [model.bos_id, *ids]
    lps = model.sequence_logprobs(ids)
    return math.exp(sum(lps) / len(lps)) if lps else 0.0


class Classification(TypedDict):
    """A model as a classifier of statements: its held-out error (threshold fitted on the other
    fold), the best-threshold error on all of them (optimistic), that threshold, its AUROC."""

    model: str
    n: int
    valid: int
    invalid: int
    error: float  # 2-fold held out
    fold_errors: tuple[float, float]
    fitted_error: float  # threshold fitted and scored on the same statements
    threshold: float
    auroc: float | None
    scores: list[float]


class ValidityRow(TypedDict):
    """One lane of `compare`: the classifier's figures beside the answers' hallucination rate."""

    lane: str
    model: str
    kind: str | None
    family: str | None
    sha256: str | None
    note: str | None  # why there are no classifier figures
    iiv_error: float | None
    iiv_auroc: float | None
    statements: int
    hallucination_rate: float
    two_times_error: float | None


def classify(model: Model, sts: list[Statement], seed: int = 0) -> Classification:
    vals = [score(model, s) for s in sts]
    labels = [s.valid for s in sts]
    fitted, threshold = scores.best_threshold_error(vals, labels)
    held_out, fold1, fold2 = scores.held_out_error(vals, labels, seed)
    n_valid = sum(labels)
    return {
        "model": model.model_id,
        "n": len(sts),
        "valid": n_valid,
        "invalid": len(sts) - n_valid,
        "error": held_out,
        "fold_errors": (fold1, fold2),
        "fitted_error": fitted,
        "threshold": threshold,
        "auroc": scores.auroc(vals, labels),
        "scores": vals,
    }


def compare(
    pg: Playground,
    questions: Sequence[Probe],
    sts: list[Statement],
    max_tokens: int,
    status: Callable[[str], object] | None = None,
    seed: int = 0,
) -> list[ValidityRow]:
    """Each lane of `pg` as a generator and its model as a classifier, one result row per lane.

    Every lane answers every probe in `questions` (greedy, from a fresh conversation) and the
    answers are graded; each model then classifies `sts` once, however many lanes share it.
    `status(text)`, when given, hears what is being done. A row holds the lane, its model and kind,
    the classifier's error and AUROC (None without a model), the number of statements, the
    hallucination rate of the answers and twice the classifier error (the paper's bound).
    """
    from playground.core.engine import Sampling
    from playground.core.lab.grading import grade
    from playground.core.remote import RemoteModel

    say = status or (lambda text: None)
    pg.fresh_prompts = True  # an answer must not depend on the questions before it
    outcomes: dict[str, list[str]] = {lane.spec.text: [] for lane in pg.lanes}
    for i, p in enumerate(questions, 1):
        say(f"generating answers… {i}/{len(questions)}")
        pg.reset_conversations()
        for r in pg.ask(p.question, Sampling(max_tokens=max_tokens)):
            if r.status == "error":
                raise PlaygroundError(
                    f"lane {r.lane.spec.text} failed on {p.question!r}: {r.error}"
                )
            outcomes[r.lane.spec.text].append(grade(p, r.text)["outcome"])
    classified: dict[str, Classification] = {}
    for lane in pg.lanes:
        # a server's model gives no prompt log-probabilities: no classifier figures (None)
        model = lane.model
        if (
            model is not None
            and not isinstance(model, RemoteModel)
            and model.model_id not in classified
        ):
            say(f"scoring {len(sts)} statements with {model.model_id}…")
            classified[model.model_id] = classify(model, sts, seed)
    rows: list[ValidityRow] = []
    for lane in pg.lanes:
        c = classified.get(lane.model.model_id) if lane.model else None
        s = scores.simpleqa(outcomes[lane.spec.text])
        remote = isinstance(lane.model, RemoteModel)
        rows.append(
            {
                "lane": lane.spec.text,
                "model": lane.model.model_id if lane.model else lane.spec.model,
                "kind": lane.model_spec.kind if lane.model_spec else None,
                "family": lane.model.family if lane.model else None,
                "sha256": pg.pool.sha256(lane.model) if lane.model else None,
                "note": "server lane: no prompt token probabilities, no classifier figures"
                if remote
                else None,
                "iiv_error": c["error"] if c else None,
                "iiv_auroc": c["auroc"] if c else None,
                "statements": c["n"] if c else 0,
                "hallucination_rate": s["incorrect"],
                "two_times_error": 2 * c["error"] if c else None,
            }
        )
    return rows
