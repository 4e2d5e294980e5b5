"""Probe runs: every question on every lane, graded, with confidence signals, resumable."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from playground.core.db import Row, SessionLog, now_iso, queries
from playground.core.engine import Model, Sampling
from playground.core.errors import PlaygroundError
from playground.core.events import Event, LaneNotReady, Token
from playground.core.lab import scores
from playground.core.lab.grading import (
    CORRECT,
    INCORRECT,
    NOT_ATTEMPTED,
    equivalent,
    extract_answer,
    grade,
)
from playground.core.lab.probes import Probe
from playground.core.playground import Playground
from playground.core.remote import RemoteModel

PTRUE_TEMPLATE = (
    "Question: {question}\nProposed answer: {answer}\nIs the proposed answer:\n (A) {a}\n (B) {b}\n"
    "The proposed answer is: ("
)
SAMPLE_TEMPERATURE = 1.0
NO_PTRUE_REMOTE = (
    "P(True) skipped on server lanes: a server gives no next-token probabilities for a prompt"
)


Judge = Callable[[Probe, str], str | None]
"""A judge lane's verdict on an answer (a grading letter), None where it gives none."""


class LabError(PlaygroundError):
    pass


@dataclass
class Progress:
    done: int
    total: int
    question: str


def _p_true_order(model: Model, question: str, answer: str, true_first: bool) -> float | None:
    a, b = ("True", "False") if true_first else ("False", "True")
    text = PTRUE_TEMPLATE.format(question=question, answer=answer.strip()[:300], a=a, b=b)
    ids = model.tokenize(text, special=False)
    if model.add_bos and model.bos_id is not None:
        ids = [model.bos_id, *ids]
    la_ids, lb_ids = model.tokenize("A", special=False), model.tokenize("B", special=False)
    if len(la_ids) != 1 or len(lb_ids) != 1:
        return None
    la, lb = model.next_token_logprobs(ids, [la_ids[0], lb_ids[0]])
    pa, pb = math.exp(la), math.exp(lb)
    if pa + pb <= 0:
        return None
    return (pa if true_first else pb) / (pa + pb)


def p_true(model: Model, question: str, answer: str) -> tuple[float | None, float | None]:
    """Kadavath et al.: ask the same model whether its answer is true, p(True) / (p(A) + p(B)), once
    with (A) True (B) False and once with the options swapped. A small base model says "(A" with
    p ~ 0.75 whatever the answer; the mean of the two orders cancels that letter bias."""
    return (
        _p_true_order(model, question, answer, True),
        _p_true_order(model, question, answer, False),
    )


def mean_ptrue(first: float | None, second: float | None) -> float | None:
    """P(True) averaged over both option orders (None unless both are known)."""
    return None if first is None or second is None else (first + second) / 2


@dataclass
class AnswerTokens:
    """One lane's answer tokens as they streamed: log-probability and where each one's text lies
    in the visible answer (a token whose text is held back, while a stop sequence may match, is
    placed where that text is released)."""

    logprobs: list[float]
    spans: list[tuple[int, int]]
    offset: int = 0
    pending: int = 0  # tokens still waiting for their text

    def add(self, text: str, logprob: float | None) -> None:
        if logprob is not None:
            self.logprobs.append(logprob)
            self.spans.append((self.offset, self.offset))
            self.pending += 1
        if text:
            end = self.offset + len(text)
            for k in range(len(self.spans) - self.pending, len(self.spans)):
                self.spans[k] = (self.offset, end)
            self.pending = 0
            self.offset = end

    def within(self, start: int, end: int) -> list[float]:
        """Log-probabilities of the tokens whose text overlaps the characters [start, end)."""
        return [
            lp
            for lp, (a, b) in zip(self.logprobs, self.spans, strict=True)
            if a < end and b > start
        ]


def confidences(lps: list[float]) -> Row:
    """Sequence, length-normalized, first-token and minimum token probability of some tokens."""
    if not lps:
        return {
            "conf_sequence": None,
            "conf_normalized": None,
            "conf_first": None,
            "conf_min": None,
        }
    return {
        "conf_sequence": math.exp(sum(lps)),
        "conf_normalized": math.exp(sum(lps) / len(lps)),
        "conf_first": math.exp(lps[0]),
        "conf_min": math.exp(min(lps)),
    }


def start_run(
    log: SessionLog,
    set_name: str,
    seed: int,
    lanes: list[str],
    samples: int,
    limit: int | None,
    max_tokens: int,
    options: dict[str, Any],
    provenance: dict[str, Any] | None = None,
) -> int:
    """A new probe run, status running; *provenance* (the command, the models and their sha256s)
    is stored with it so its report can say how to reproduce it."""
    return queries.add_probe_run(
        log,
        {
            "created_at": now_iso(),
            "set_name": set_name,
            "seed": seed,
            "lanes": json.dumps(lanes),
            "samples": samples,
            "max_items": limit,
            "max_tokens": max_tokens,
            "options": json.dumps(options),
            "status": "running",
            "provenance": json.dumps(provenance or {}),
        },
    )


def lane_provenance(pg: Playground) -> list[dict[str, Any]]:
    """Each lane's model as the run used it: id, kind, family, file, sha256 (None for a server),
    size and quantization where the file says."""
    out: list[dict[str, Any]] = []
    for lane in pg.lanes:
        spec, model = lane.model_spec, lane.model
        entry: dict[str, Any] = {
            "lane": lane.spec.text,
            "model": spec.id if spec else lane.spec.model,
            "kind": spec.kind if spec else None,
            "family": model.family if model is not None else None,
            "remote": isinstance(model, RemoteModel),
            "sha256": None,
            "size_mb": None,
            "quantization": None,
        }
        if isinstance(model, Model):
            entry["sha256"] = pg.pool.sha256(model)
            entry["size_mb"] = round(model.info.size / 1e6, 1)
            entry["quantization"] = model.info.quantization
        elif isinstance(model, RemoteModel):
            entry["url"] = model.url
        out.append(entry)
    return out


def get_run(log: SessionLog, run_id: int | None) -> Row:
    run = queries.probe_run(log, run_id)
    if run is None:
        raise LabError(
            f"no probe run {run_id} in {log.path}"
            if run_id is not None
            else f"no probe runs in {log.path} yet: run `playground probe` first"
        )
    return run


def done_keys(log: SessionLog, run_id: int) -> set[tuple[str, str, int]]:
    return queries.probe_item_keys(log, run_id)


def run_probes(
    pg: Playground,
    log: SessionLog,
    run_id: int,
    probes: list[Probe],
    samples: int,
    max_tokens: int,
    seed: int = 0,
    ptrue: bool = True,
    judge: Judge | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> None:
    """Ask every probe on every lane (lanes run side by side); skip what the run already has.

    The run ends as "complete", or as "error" with the message whatever went wrong (a failed lane,
    a bug, Ctrl-C): never left "running". `--resume` continues an errored run."""
    queries.update_probe_run(log, run_id, {"status": "running", "error": None})
    try:
        _run_probes(pg, log, run_id, probes, samples, max_tokens, seed, ptrue, judge, progress)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            msg = f"interrupted; continue with --resume {run_id}"
        elif isinstance(e, SystemExit):
            msg = f"terminated; continue with --resume {run_id}"
        else:
            msg = str(e) or type(e).__name__
        queries.update_probe_run(
            log, run_id, {"status": "error", "error": msg, "finished_at": now_iso()}
        )
        if isinstance(e, LabError | KeyboardInterrupt | SystemExit):
            raise
        if isinstance(e, PlaygroundError):
            raise LabError(f"probe run {run_id} stopped: {e}") from e
        raise LabError(
            f"probe run {run_id} stopped by an unexpected {type(e).__name__}: {e}"
        ) from e
    queries.update_probe_run(
        log, run_id, {"status": "complete", "error": None, "finished_at": now_iso()}
    )


def _run_probes(
    pg: Playground,
    log: SessionLog,
    run_id: int,
    probes: list[Probe],
    samples: int,
    max_tokens: int,
    seed: int,
    ptrue: bool,
    judge: Judge | None,
    progress: Callable[[Progress], None] | None,
) -> None:
    have = done_keys(log, run_id)
    pg.fresh_prompts = True  # an item's answer must not depend on the items before it
    problems: list[str] = []
    for lane in pg.lanes:
        if not pg.load_lane(
            lane, lambda ev: problems.append(ev.error) if isinstance(ev, LaneNotReady) else None
        ):
            raise LabError(f"lane {lane.spec.text} cannot answer: {'; '.join(problems)}")
    run = queries.probe_run(log, run_id) or {}
    provenance = json.loads(run.get("provenance") or "{}") or {}
    provenance["lanes"] = lane_provenance(pg)
    queries.update_probe_run(log, run_id, {"provenance": json.dumps(provenance)})
    lane_names = [lane.spec.text for lane in pg.lanes]
    total = len(probes) * (1 + samples)
    done = 0
    pg.ensure_session()
    queries.update_probe_run(log, run_id, {"session_id": pg.session_id})
    for probe in probes:
        for sample in range(samples + 1):
            done += 1
            todo = [i for i, name in enumerate(lane_names) if (probe.id, name, sample) not in have]
            if progress:
                progress(Progress(done, total, probe.question))
            if not todo:
                continue
            pg.reset_conversations()
            tokens: dict[str, AnswerTokens] = {}

            def collect(ev: Event, tokens: dict[str, AnswerTokens] = tokens) -> None:
                if isinstance(ev, Token):
                    seen = tokens.setdefault(ev.lane, AnswerTokens([], []))
                    # -1: text released after a held-back stop prefix, not a token; NaN: no
                    # probability sent (a server)
                    known = ev.token_id != -1 and ev.logprob == ev.logprob
                    seen.add(ev.text, ev.logprob if known else None)

            sampling = (
                Sampling(max_tokens=max_tokens)
                if sample == 0
                else Sampling(
                    temperature=SAMPLE_TEMPERATURE, seed=seed * 1000 + sample, max_tokens=max_tokens
                )
            )
            results = pg.ask(probe.question, sampling, emit=collect, lanes=todo)
            rows: list[Row] = []
            for r in results:
                if r.status == "error":
                    raise LabError(
                        f"lane {r.lane.spec.text} failed on {probe.question!r}: {r.error}"
                    )
                g = grade(probe, r.text)
                seen = tokens.get(r.lane.name, AnswerTokens([], []))
                start, end = g["span"]
                span_lps = seen.within(start, end) if end > start else []
                row: Row = {
                    "run_id": run_id,
                    "probe_id": probe.id,
                    "question": probe.question,
                    "type": probe.type,
                    "answers": json.dumps(list(probe.answers)),
                    "lane": r.lane.spec.text,
                    "sample": sample,
                    "exchange_id": r.exchange_id,
                    "text": r.text,
                    "outcome": g["outcome"],
                    "reason": g["reason"],
                    "abstained": int(g["abstained"]),
                    "exact_match": int(g["exact_match"]),
                    "f1": g["f1"],
                    "span_start": start,
                    "span_end": end,
                    "n_tokens": r.stats.answer_tokens if r.stats else len(seen.logprobs),
                    "span_tokens": len(span_lps),
                    **confidences(span_lps),
                    "conf_ptrue": None,
                    "ptrue_true_first": None,
                    "ptrue_true_second": None,
                    "judge": None,
                    "created_at": now_iso(),
                }
                model = r.lane.model
                answer = extract_answer(r.text)
                # a server's model gives no next-token log-probabilities for a prompt: no p(True)
                if ptrue and sample == 0 and isinstance(model, Model) and answer:
                    first, second = p_true(model, probe.question, answer)
                    row["ptrue_true_first"], row["ptrue_true_second"] = first, second
                    row["conf_ptrue"] = mean_ptrue(first, second)
                if judge is not None and sample == 0 and probe.answers:
                    row["judge"] = judge(probe, r.text)
                rows.append(row)
            queries.add_probe_items(log, rows)


def make_judge(pg_judge: Playground) -> Judge:
    """A judge lane grading with the three-way rubric; None where the judge gives no letter."""
    from playground.core.lab.grading import JUDGE_PROMPT, parse_judge

    pg_judge.fresh_prompts = True  # a verdict must not depend on the verdicts before it

    def judge(probe: Probe, text: str) -> str | None:
        pg_judge.reset_conversations()
        prompt = JUDGE_PROMPT.format(
            question=probe.question, gold=" / ".join(probe.answers), answer=extract_answer(text)
        )
        [r] = pg_judge.ask(prompt, Sampling(max_tokens=4))
        return parse_judge(r.text)

    return judge


# -- reading a run back for the report ------------------------------------------------------

HUMAN = {
    "correct": CORRECT,
    "hallucination": INCORRECT,
    "abstained": NOT_ATTEMPTED,
    "partial": INCORRECT,
}


def items(log: SessionLog, run_id: int) -> list[Row]:
    """The run's answers, each with its final outcome: a human tag overrides the automatic grade."""
    rows = queries.probe_items(log, run_id)
    for r in rows:
        r["auto"] = r["outcome"]
        if r["human"]:
            r["outcome"] = HUMAN.get(r["human"], r["outcome"])
    return rows


def agreement(greedy: Row, samples: list[Row]) -> float | None:
    """Share of the temperature-1 samples whose extracted answer is equivalent to the greedy one
    (the grader's `equivalent`: "Lyon" and "Paris" in otherwise equal sentences do not agree)."""
    if not samples:
        return None
    g = extract_answer(greedy["text"])
    return sum(equivalent(extract_answer(s["text"]), g) for s in samples) / len(samples)


def semantic_entropy(greedy: Row, samples: list[Row]) -> float | None:
    """Semantic entropy (Farquhar et al. 2024) over the greedy answer and the samples, clustered by
    the grader's equivalence of their extracted answers; higher means less consistent."""
    if not samples:
        return None
    answers = [extract_answer(r["text"]) for r in [greedy, *samples]]
    return scores.semantic_entropy(answers, equivalent)
