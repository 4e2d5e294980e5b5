"""The report of a probe run: scores per lane, calibration per confidence signal, diagrams.

What it can show is said next to the figures: calibration is measured on attempted answers only
(an abstention's probability is that of the words "I don't know", not a confidence in an answer),
every figure has a seeded bootstrap 95% interval, a cell with fewer than `scores.MIN_CLASS` right or
wrong answers is marked too few, and the answer's length is a baseline row, because a sequence
probability is mostly a length: a signal is worth reading where it ranks better than length does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from playground.core.db import Row, SessionLog
from playground.core.lab import scores
from playground.core.lab.grading import refusal_rates
from playground.core.lab.runner import (
    NO_PTRUE_REMOTE,
    agreement,
    get_run,
    items,
    semantic_entropy,
)
from playground.core.lanespec import LaneSpecError, parse_lane

# Signals that are probabilities: ECE, Brier, AUROC and a reliability diagram.
SIGNALS = {
    "conf_sequence": "sequence probability",
    "conf_normalized": "length-normalized probability",
    "conf_first": "first-token probability",
    "conf_min": "minimum token probability",
    "conf_ptrue": "P(True), both option orders",
    "agreement": "agreement of samples",
}
# Signals that only rank answers (AUROC): higher value = less confident, so they are negated.
RANKINGS = {
    "semantic_entropy": "semantic entropy (lower ranks higher)",
    "n_tokens": "baseline: answer length in tokens (shorter ranks higher)",
}
BASELINE = "n_tokens"
BOOTSTRAP_SEED = 0
RESCORED = "†"
TOO_FEW = "*"


class Interval(TypedDict):
    """Bootstrap 95% intervals of a cell's figures (None where the figure is undefined)."""

    ece: tuple[float, float] | None
    brier: tuple[float, float] | None
    auroc: tuple[float, float] | None


class Calibration(TypedDict):
    """How well one confidence signal predicts a correct answer, for one lane, on attempted answers."""

    name: str
    n: int  # attempted answers that have this signal
    correct: int
    ece: float | None  # None: no answers, or a ranking signal (not a probability)
    brier: float | None
    auroc: float | None
    ci: Interval
    too_few: bool  # fewer than scores.MIN_CLASS right or wrong answers
    baseline: bool
    reliability: list[scores.ReliabilityBin]
    note: str | None  # why a lane has no figures for this signal


class Rule(TypedDict):
    """An abstaining lane's prompt says: answer only if more than t confident. Does accuracy among
    its attempted answers reach t?"""

    t: float
    attempted: int
    accuracy: float | None
    ci: tuple[float, float] | None
    meets: bool | None  # None: nothing attempted


class LaneReport(TypedDict):
    lane: str
    prompted_t: float | None  # the target its prompt states (abstain@t), None without one
    simpleqa: scores.SimpleQA
    accuracy_ci: tuple[float, float] | None  # accuracy given attempted
    targets: dict[float, float]  # confidence target t -> score
    targets_ci: dict[float, tuple[float, float] | None]
    rescored: dict[float, bool]  # t -> answers were prompted with another target (or none)
    rule: Rule | None
    correct_refusal: float | None
    false_acceptance: float | None
    false_refusal: float | None
    human_disagreements: int
    human_tagged: int
    calibration: dict[str, Calibration]  # by signal (SIGNALS, then RANKINGS)
    notes: list[str]


class Report(TypedDict):
    run: Row  # the probe_runs row
    provenance: dict[str, Any]
    lanes: list[LaneReport]
    n_items: int
    questions: dict[str, int]  # greedy questions by type
    families_note: str | None
    bootstrap: dict[str, int]


def _interval(stat: Callable[[np.ndarray], float | None], n: int) -> tuple[float, float] | None:
    return scores.bootstrap(stat, n, seed=BOOTSTRAP_SEED)


def calibration(name: str, values: list[float], ok: list[bool], ranking: bool) -> Calibration:
    """ECE, Brier, AUROC and their intervals for one signal on attempted answers."""
    conf = np.asarray(values, dtype=np.float64)
    y = np.asarray(ok, dtype=bool)
    n = int(conf.size)
    empty: Interval = {"ece": None, "brier": None, "auroc": None}
    if n == 0:
        return {
            "name": name,
            "n": 0,
            "correct": 0,
            "ece": None,
            "brier": None,
            "auroc": None,
            "ci": empty,
            "too_few": True,
            "baseline": False,
            "reliability": [],
            "note": None,
        }
    if ranking:
        rank = -conf
        ci: Interval = {
            "ece": None,
            "brier": None,
            "auroc": _interval(lambda i: scores.auroc(rank[i], y[i]), n),
        }
        return {
            "name": name,
            "n": n,
            "correct": int(y.sum()),
            "ece": None,
            "brier": None,
            "auroc": scores.auroc(rank, y),
            "ci": ci,
            "too_few": scores.too_few(ok),
            "baseline": False,
            "reliability": [],
            "note": None,
        }
    conf = np.clip(conf, 0.0, 1.0)
    ci = {
        "ece": _interval(lambda i: scores.ece(conf[i], y[i]), n),
        "brier": _interval(lambda i: scores.brier(conf[i], y[i]), n),
        "auroc": _interval(lambda i: scores.auroc(conf[i], y[i]), n),
    }
    return {
        "name": name,
        "n": n,
        "correct": int(y.sum()),
        "ece": scores.ece(conf, y),
        "brier": scores.brier(conf, y),
        "auroc": scores.auroc(conf, y),
        "ci": ci,
        "too_few": scores.too_few(ok),
        "baseline": False,
        "reliability": scores.reliability(conf.tolist(), ok),
        "note": None,
    }


def _accuracy_ci(outcomes: list[str]) -> tuple[float, float] | None:
    c = np.asarray([o == "correct" for o in outcomes], dtype=np.float64)
    a = np.asarray([o != "not_attempted" for o in outcomes], dtype=np.float64)

    def stat(i: np.ndarray) -> float | None:
        att = a[i].sum()
        return float(c[i].sum() / att) if att else None

    return _interval(stat, len(outcomes))


def _target_ci(outcomes: list[str], t: float) -> tuple[float, float] | None:
    p = scores.penalty(t)
    v = np.asarray(
        [1.0 if o == "correct" else -p if o == "incorrect" else 0.0 for o in outcomes],
        dtype=np.float64,
    )
    return _interval(lambda i: float(v[i].mean()), len(outcomes))


def families_note(provenance: dict[str, Any]) -> str | None:
    """One sentence when the compared lanes' models differ in family (then base vs. tuned is not the
    only difference, and the run cannot test whether post-training changes calibration)."""
    models = {m["model"]: m for m in provenance.get("lanes", [])}
    families = {m.get("family") for m in models.values()}
    if len(families) < 2 or None in families:
        return None
    described = "; ".join(
        f"{m['model']}: {m.get('family')}, {m.get('kind') or '?'}"
        + (f", {m['size_mb']:g} MB" if m.get("size_mb") else "")
        + (f", {m['quantization']}" if m.get("quantization") else "")
        for m in models.values()
    )
    return (
        f"The lanes' models differ in family ({described}), so a difference between them is not "
        "only base vs. instruction-tuned: this run cannot test whether post-training hurts calibration."
    )


def build(log: SessionLog, run_id: int | None = None) -> Report:
    run = get_run(log, run_id)
    rows = items(log, run["id"])
    provenance: dict[str, Any] = json.loads(run.get("provenance") or "{}") or {}
    remote = {m["lane"] for m in provenance.get("lanes", []) if m.get("remote")}
    by_lane: dict[str, list[Row]] = defaultdict(list)
    samples: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        if r["sample"] == 0:
            by_lane[r["lane"]].append(r)
        else:
            samples[(r["lane"], r["probe_id"])].append(r)
    lane_names: list[str] = json.loads(run["lanes"])
    lanes: list[LaneReport] = []
    for lane in lane_names:
        greedy = by_lane.get(lane, [])
        outcomes = [r["outcome"] for r in greedy]
        for r in greedy:
            own = samples.get((lane, r["probe_id"]), [])
            r["agreement"] = agreement(r, own)
            r["semantic_entropy"] = semantic_entropy(r, own)
        try:
            prompted = parse_lane(lane).abstain
        except LaneSpecError:  # a lane spec written by an older version: no target known
            prompted = None
        sq = scores.simpleqa(outcomes)
        rates = refusal_rates([(r["type"], r["outcome"]) for r in greedy])
        rule: Rule | None = None
        if prompted is not None:
            attempted = sum(o != "not_attempted" for o in outcomes)
            acc = sq["accuracy_given_attempted"] if attempted else None
            rule = {
                "t": prompted,
                "attempted": attempted,
                "accuracy": acc,
                "ci": _accuracy_ci(outcomes) if attempted else None,
                "meets": None if acc is None else acc >= prompted,
            }
        entry: LaneReport = {
            "lane": lane,
            "prompted_t": prompted,
            "simpleqa": sq,
            "accuracy_ci": _accuracy_ci(outcomes),
            "targets": {t: scores.target_score(outcomes, t) for t in scores.TARGETS},
            "targets_ci": {t: _target_ci(outcomes, t) for t in scores.TARGETS},
            "rescored": {t: t != (prompted or 0.0) for t in scores.TARGETS},
            "rule": rule,
            "correct_refusal": rates["correct_refusal"],
            "false_acceptance": rates["false_acceptance"],
            "false_refusal": rates["false_refusal"],
            "human_disagreements": sum(
                1 for r in greedy if r["human"] and r["outcome"] != r["auto"]
            ),
            "human_tagged": sum(1 for r in greedy if r["human"]),
            "calibration": {},
            "notes": [],
        }
        # Calibration on attempted answers only.
        attempted_rows = [r for r in greedy if r["outcome"] != "not_attempted"]
        both_orders = any(r.get("ptrue_true_second") is not None for r in attempted_rows)
        for key, name in [*SIGNALS.items(), *RANKINGS.items()]:
            if (
                key == "conf_ptrue"
                and not both_orders
                and any(r.get(key) is not None for r in attempted_rows)
            ):
                name = "P(True), one option order (biased toward A)"
            pairs = [
                (r[key], r["outcome"] == "correct")
                for r in attempted_rows
                if r.get(key) is not None
            ]
            cal = calibration(name, [c for c, _ in pairs], [y for _, y in pairs], key in RANKINGS)
            cal["baseline"] = key == BASELINE
            if not pairs:
                if lane in remote and key == "conf_ptrue":
                    cal["note"] = NO_PTRUE_REMOTE
                elif key in ("agreement", "semantic_entropy") and not run["samples"]:
                    cal["note"] = "no samples (probe --samples K)"
                elif lane in remote:
                    cal["note"] = "the server sent no token probabilities"
                elif not attempted_rows:
                    cal["note"] = "no attempted answers"
            entry["calibration"][key] = cal
        if lane in remote:
            entry["notes"].append(f"{lane}: {NO_PTRUE_REMOTE}.")
        lanes.append(entry)
    greedy_all = [r for r in rows if r["sample"] == 0]
    questions: dict[str, int] = defaultdict(int)
    for r in {r["probe_id"]: r for r in greedy_all}.values():
        questions[r["type"]] += 1
    return {
        "run": run,
        "provenance": provenance,
        "lanes": lanes,
        "n_items": len(rows),
        "questions": dict(questions),
        "families_note": families_note(provenance),
        "bootstrap": {"resamples": scores.BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED},
    }


def pct(x: float | None) -> str:
    """A share as a whole percentage, "-" for none."""
    return "-" if x is None else f"{x:.0%}"


def num(x: float | None, digits: int = 3) -> str:
    """A figure with *digits* decimals, "-" for none."""
    return "-" if x is None else f"{x:.{digits}f}"


def interval(ci: tuple[float, float] | None, digits: int = 2, share: bool = False) -> str:
    """A 95% interval as "[lo, hi]", "" for none."""
    if ci is None:
        return ""
    if share:
        return f"[{ci[0]:.0%}, {ci[1]:.0%}]"
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def with_ci(x: float | None, ci: tuple[float, float] | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f} {interval(ci)}".rstrip()


def target_cell(e: LaneReport, t: float) -> str:
    mark = RESCORED if e["rescored"][t] else ""
    return f"{e['targets'][t]:+.3f}{mark} {interval(e['targets_ci'][t])}".rstrip()


def auroc_cell(c: Calibration) -> str:
    return with_ci(c["auroc"], c["ci"]["auroc"]) + (
        TOO_FEW if c["too_few"] and c["auroc"] is not None else ""
    )


def cal_note(c: Calibration, short: bool = False) -> str:
    if c["note"]:
        return c["note"]
    if c["n"] and c["too_few"]:
        if short:
            return "too few"
        return f"too few ({c['correct']} right, {c['n'] - c['correct']} wrong; < {scores.MIN_CLASS} of one)"
    return ""


def rule_cell(r: Rule) -> str:
    """Whether accuracy among attempted answers reaches t, and whether its interval agrees."""
    if r["meets"] is None:
        return "nothing attempted"
    lo, hi = r["ci"] if r["ci"] is not None else (None, None)
    if r["meets"]:
        return "yes" if lo is None or lo >= r["t"] else "yes (its 95% CI reaches below t)"
    return "no" if hi is None or hi < r["t"] else "no (its 95% CI reaches t)"


def provenance_lines(rep: Report) -> list[str]:
    """Lanes, models and sha256s, seeds, item counts and the command that reproduces the run."""
    run, prov = rep["run"], rep["provenance"]
    counts = ", ".join(f"{n} {t}" for t, n in sorted(rep["questions"].items()))
    out = [
        f"- Reproduce: `{prov.get('command') or '(not recorded: a run from an older version)'}`",
        f"- Seeds: run seed {run['seed']} (invented entities; sample k of a question uses seed "
        f"{run['seed']} × 1000 + k); bootstrap {rep['bootstrap']['resamples']} resamples, seed {rep['bootstrap']['seed']}",
        f"- Items: {sum(rep['questions'].values())} questions ({counts or 'none'}), "
        f"{run['samples']} extra samples per question, {rep['n_items']} answers logged; "
        f"max tokens {run['max_tokens']}",
    ]
    for m in prov.get("lanes", []):
        where = m.get("url") if m.get("remote") else f"sha256 {m.get('sha256') or '?'}"
        extra = ", ".join(
            str(x)
            for x in (
                m.get("family"),
                m.get("kind"),
                f"{m['size_mb']:g} MB" if m.get("size_mb") else None,
                m.get("quantization"),
            )
            if x
        )
        out.append(f"- Lane `{m['lane']}`: model {m['model']} ({extra}), {where}")
    return out


def markdown(rep: Report, svgs: dict[str, str]) -> str:
    run = rep["run"]
    status = run["status"] + (f" ({run['error']})" if run.get("error") else "")
    out = [
        f"# Probe run {run['id']}: `{run['set_name']}`",
        "",
        f"{run['created_at']} · lanes: {', '.join(json.loads(run['lanes']))} · status: {status}",
        "",
        *provenance_lines(rep),
        "",
    ]
    if rep["families_note"]:
        out += [rep["families_note"], ""]
    out += [
        "## Answers (greedy)",
        "",
        "| lane | n | correct | incorrect | not attempted | accuracy if attempted [95% CI] | F | correct refusal | false acceptance | false refusal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in rep["lanes"]:
        s = e["simpleqa"]
        out.append(
            f"| {e['lane']} | {s['n']} | {pct(s['correct'])} | {pct(s['incorrect'])} | {pct(s['not_attempted'])} | "
            f"{pct(s['accuracy_given_attempted'])} {interval(e['accuracy_ci'], share=True)} | {num(s['f'])} | "
            f"{pct(e['correct_refusal'])} | {pct(e['false_acceptance'])} | {pct(e['false_refusal'])} |"
        )
    out += [
        "",
        "## Score with a confidence target t (wrong answers cost t/(1-t))",
        "",
        f"{RESCORED} re-scored: the lane's answers were prompted with another target (or none) and are "
        "only scored here with t; only the column of the lane's own target scores answers given under "
        "that rule. `probe --targets 0.5,0.75,0.9` runs one prompted lane per t.",
        "",
        "| lane | prompted at | "
        + " | ".join(f"t = {t:g} [95% CI]" for t in scores.TARGETS)
        + " |",
        "|---|---|" + "---|" * len(scores.TARGETS),
    ]
    for e in rep["lanes"]:
        prompted = f"abstain@{e['prompted_t']:g}" if e["prompted_t"] is not None else "no target"
        out.append(
            f"| {e['lane']} | {prompted} | "
            + " | ".join(target_cell(e, t) for t in scores.TARGETS)
            + " |"
        )
    rules = [e for e in rep["lanes"] if e["rule"] is not None]
    if rules:
        out += [
            "",
            "## Does each abstaining lane keep its rule? (accuracy among attempted answers ≥ t)",
            "",
            "| lane | t | attempted | accuracy if attempted [95% CI] | ≥ t |",
            "|---|---|---|---|---|",
        ]
        for e in rules:
            r = e["rule"]
            assert r is not None
            out.append(
                f"| {e['lane']} | {r['t']:g} | {r['attempted']} | {pct(r['accuracy'])} {interval(r['ci'], share=True)} | {rule_cell(r)} |"
            )
    out += [
        "",
        "## Calibration on attempted answers (correct vs. confidence)",
        "",
        'Abstentions are left out: their probability is that of the words "I don\'t know". '
        f"Confidence is read over the graded answer's tokens. {TOO_FEW} too few: fewer than "
        f"{scores.MIN_CLASS} right or wrong answers, the figure moves with a single answer. "
        "The baseline row ranks answers by length alone: a signal whose AUROC does not beat it says "
        "little beyond the answer's length.",
        "",
        "| lane | signal | n | right | ECE [95% CI] | Brier [95% CI] | AUROC [95% CI] | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in rep["lanes"]:
        for c in e["calibration"].values():
            out.append(
                f"| {e['lane']} | {c['name']} | {c['n']} | {c['correct']} | {with_ci(c['ece'], c['ci']['ece'])} | "
                f"{with_ci(c['brier'], c['ci']['brier'])} | {auroc_cell(c)} | {cal_note(c)} |"
            )
    notes = [n for e in rep["lanes"] for n in e["notes"]]
    if notes:
        out += ["", *notes]
    tagged = sum(e["human_tagged"] for e in rep["lanes"])
    if tagged:
        dis = sum(e["human_disagreements"] for e in rep["lanes"])
        out += [
            "",
            f"Human tags override the automatic grade: {tagged} answers tagged, {dis} of them disagreed with it.",
        ]
    if svgs:
        out += ["", "## Reliability diagrams (attempted answers)", ""]
        for lane, path in svgs.items():
            out.append(f"![{lane}]({Path(path).name})")
    return "\n".join(out) + "\n"


def reliability_svg(
    title: str, reliability: list[scores.ReliabilityBin], width: int = 360, height: int = 360
) -> str:
    """A reliability diagram: confidence bins on x, accuracy on y, the diagonal for reference;
    each bar is labelled right/n."""
    pad = 40
    w, h = width - 2 * pad, height - 2 * pad

    def x(v: float) -> float:
        return pad + v * w

    def y(v: float) -> float:
        return pad + (1 - v) * h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="13">{_esc(title)}</text>',
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#999" stroke-dasharray="4"/>',
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(0)}" stroke="black"/>',
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(0)}" y2="{y(1)}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">confidence</text>',
        f'<text x="12" y="{height / 2}" transform="rotate(-90 12 {height / 2})" text-anchor="middle">accuracy</text>',
    ]
    for b in reliability:
        lo, hi = b["bin"]
        parts.append(
            f'<rect x="{x(lo) + 1}" y="{y(b["accuracy"])}" width="{(hi - lo) * w - 2}" height="{y(0) - y(b["accuracy"])}" fill="#4c78a8" opacity="0.8"/>'
        )
        parts.append(
            f'<text x="{x((lo + hi) / 2)}" y="{y(b["accuracy"]) - 3}" text-anchor="middle" font-size="9">{b["correct"]}/{b["n"]}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write(rep: Report, folder: Path, signal: str = "conf_normalized") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    svgs = {}
    for i, e in enumerate(rep["lanes"]):
        cal = e["calibration"].get(signal)
        if cal and cal["reliability"]:
            path = folder / f"run{rep['run']['id']}-lane{i + 1}-reliability.svg"
            path.write_text(
                reliability_svg(f"{e['lane']} ({cal['name']}, n={cal['n']})", cal["reliability"])
            )
            svgs[e["lane"]] = str(path)
    md = folder / f"run{rep['run']['id']}-report.md"
    md.write_text(markdown(rep, svgs))
    return md
