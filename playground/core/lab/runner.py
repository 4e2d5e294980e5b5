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
from playground.core.events import Event, Token
from playground.core.lab.grading import (
    CORRECT,
    INCORRECT,
    NOT_ATTEMPTED,
    equivalent,
    extract_answer,
    grade,
)
from playground.core.lab.probes import Probe
from playground.core.lab.scores import span_logprobs
from playground.core.playground import Playground
from playground.core.remote import RemoteModel

PTRUE_TEMPLATE = (
    "Question: {question}\nProposed answer: {answer}\nIs the proposed answer:\n (A) True\n (B) False\n"
    "The proposed answer is: ("
)
SAMPLE_TEMPERATURE = 1.0


Judge = Callable[[Probe, str], str | None]
"""A judge lane's verdict on an answer (a grading letter), None where it gives none."""


class LabError(PlaygroundError):
    pass


@dataclass
class Progress:
    done: int
    total: int
    question: str


def p_true(model: Model, question: str, answer: str) -> float | None:
    """Kadavath et al.: ask the same model whether its answer is true; p(A) / (p(A) + p(B))."""
    text = PTRUE_TEMPLATE.format(question=question, answer=answer.strip()[:300])
    ids = model.tokenize(text, special=False)
    if model.add_bos and model.bos_id is not None:
        ids = [model.bos_id, *ids]
    a, b = model.tokenize("A", special=False), model.tokenize("B", special=False)
    if len(a) != 1 or len(b) != 1:
        return None
    la, lb = model.next_token_logprobs(ids, [a[0], b[0]])
    pa, pb = math.exp(la), math.exp(lb)
    return pa / (pa + pb) if pa + pb > 0 else None


def start_run(
    log: SessionLog,
    set_name: str,
    seed: int,
    lanes: list[str],
    samples: int,
    limit: int | None,
    max_tokens: int,
    options: dict[str, Any],
) -> int:
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
        },
    )


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
    """Ask every probe on every lane (lanes run side by side); skip what the run already has."""
    have = done_keys(log, run_id)
    pg.fresh_prompts = True  # an item's answer must not depend on the items before it
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
            tokens: dict[str, list[tuple[str, float]]] = {}

            def collect(ev: Event, tokens: dict[str, list[tuple[str, float]]] = tokens) -> None:
                if isinstance(ev, Token):
                    lp = ev.logprob if ev.token_id != -1 else math.nan
                    tokens.setdefault(ev.lane, []).append((ev.text, lp))

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
                # confidence over the tokens of the graded span, not the whole generation
                lps = span_logprobs(tokens.get(r.lane.name, []), g["span"])
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
                    "abstained": int(g["abstained"]),
                    "exact_match": int(g["exact_match"]),
                    "f1": g["f1"],
                    "conf_sequence": math.exp(sum(lps)) if lps else None,
                    "conf_normalized": math.exp(sum(lps) / len(lps)) if lps else None,
                    "conf_first": math.exp(lps[0]) if lps else None,
                    "conf_ptrue": None,
                    "judge": None,
                    "created_at": now_iso(),
                }
                model = r.lane.model
                # a server's model gives no next-token log-probabilities for a prompt: no p(True)
                if (
                    ptrue
                    and sample == 0
                    and model is not None
                    and not isinstance(model, RemoteModel)
                    and extract_answer(r.text)
                ):
                    row["conf_ptrue"] = p_true(model, probe.question, extract_answer(r.text))
                if judge is not None and sample == 0 and probe.answers:
                    row["judge"] = judge(probe, r.text)
                rows.append(row)
            queries.add_probe_items(log, rows)
    queries.update_probe_run(log, run_id, {"status": "complete", "finished_at": now_iso()})


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
            human = HUMAN.get(r["human"], r["outcome"])
            r["outcome"] = human
    return rows


def agreement(greedy: Row, samples: list[Row]) -> float | None:
    """Share of the temperature-1 samples that give the greedy answer (`equivalent`)."""
    if not samples:
        return None
    return sum(equivalent(s["text"], greedy["text"]) for s in samples) / len(samples)
