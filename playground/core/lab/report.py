"""The report of a probe run: scores per lane, calibration per confidence signal, diagrams."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TypedDict

from playground.core.db import Row, SessionLog
from playground.core.lab import scores
from playground.core.lab.grading import refusal_rates
from playground.core.lab.runner import agreement, get_run, items

SIGNALS = {
    "conf_sequence": "sequence probability",
    "conf_normalized": "length-normalized probability",
    "conf_first": "first-token probability",
    "conf_ptrue": "P(True)",
    "agreement": "agreement of samples",
}


class Calibration(TypedDict):
    """How well one confidence signal predicts a correct answer, for one lane."""

    name: str
    n: int
    ece: float
    brier: float
    auroc: float | None
    reliability: list[scores.ReliabilityBin]


class LaneReport(TypedDict):
    lane: str
    simpleqa: scores.SimpleQA
    targets: dict[float, float]  # confidence target t -> score
    correct_refusal: float | None  # invented/unknowable questions not attempted (refusal_rates)
    false_acceptance: float | None  # invented/unknowable questions attempted
    false_refusal: float | None  # fact questions not attempted
    human_disagreements: int
    human_tagged: int
    calibration: dict[str, Calibration]  # by signal (SIGNALS)


class Report(TypedDict):
    run: Row  # the probe_runs row
    lanes: list[LaneReport]
    n_items: int


def build(log: SessionLog, run_id: int | None = None) -> Report:
    run = get_run(log, run_id)
    rows = items(log, run["id"])
    by_lane: dict[str, list[Row]] = defaultdict(list)
    samples: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        if r["sample"] == 0:
            by_lane[r["lane"]].append(r)
        else:
            samples[(r["lane"], r["probe_id"])].append(r)
    lanes: list[LaneReport] = []
    for lane in json.loads(run["lanes"]):
        greedy = by_lane.get(lane, [])
        outcomes = [r["outcome"] for r in greedy]
        for r in greedy:
            r["agreement"] = agreement(r, samples.get((lane, r["probe_id"]), []))
        refusals = refusal_rates((r["type"], r["outcome"]) for r in greedy)
        entry: LaneReport = {
            "lane": lane,
            "simpleqa": scores.simpleqa(outcomes),
            "targets": {t: scores.target_score(outcomes, t) for t in scores.TARGETS},
            "correct_refusal": refusals["correct_refusal"],
            "false_acceptance": refusals["false_acceptance"],
            "false_refusal": refusals["false_refusal"],
            "human_disagreements": sum(
                1 for r in greedy if r["human"] and r["outcome"] != r["auto"]
            ),
            "human_tagged": sum(1 for r in greedy if r["human"]),
            "calibration": {},
        }
        for key, name in SIGNALS.items():
            pairs = [(r[key], r["outcome"] == "correct") for r in greedy if r.get(key) is not None]
            if not pairs:
                continue
            conf = [min(1.0, max(0.0, c)) for c, _ in pairs]
            ok = [y for _, y in pairs]
            entry["calibration"][key] = {
                "name": name,
                "n": len(pairs),
                "ece": scores.ece(conf, ok),
                "brier": scores.brier(conf, ok),
                "auroc": scores.auroc(conf, ok),
                "reliability": scores.reliability(conf, ok),
            }
        lanes.append(entry)
    return {"run": run, "lanes": lanes, "n_items": len(rows)}


def pct(x: float | None) -> str:
    """A share as a whole percentage, "-" for none."""
    return "-" if x is None else f"{x:.0%}"


def num(x: float | None, digits: int = 3) -> str:
    """A figure with *digits* decimals, "-" for none."""
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(rep: Report, svgs: dict[str, str]) -> str:
    run = rep["run"]
    out = [
        f"# Probe run {run['id']}: `{run['set_name']}`",
        "",
        f"{run['created_at']} · lanes: {', '.join(json.loads(run['lanes']))} · samples per question: {run['samples']} · status: {run['status']}",
        "",
        "## Answers (greedy)",
        "",
        "| lane | n | correct | incorrect | not attempted | accuracy if attempted | F | correct refusal | false acceptance | false refusal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in rep["lanes"]:
        s = e["simpleqa"]
        out.append(
            f"| {e['lane']} | {s['n']} | {pct(s['correct'])} | {pct(s['incorrect'])} | {pct(s['not_attempted'])} | "
            f"{pct(s['accuracy_given_attempted'])} | {num(s['f'])} | {pct(e['correct_refusal'])} | {pct(e['false_acceptance'])} | {pct(e['false_refusal'])} |"
        )
    out += [
        "",
        "## Score with a confidence target t (wrong answers cost t/(1-t))",
        "",
        "| lane | " + " | ".join(f"t = {t:g}" for t in scores.TARGETS) + " |",
        "|---|" + "---|" * len(scores.TARGETS),
    ]
    for e in rep["lanes"]:
        out.append(
            f"| {e['lane']} | "
            + " | ".join(f"{e['targets'][t]:+.3f}" for t in scores.TARGETS)
            + " |"
        )
    out += [
        "",
        "## Calibration (correct vs. confidence)",
        "",
        "| lane | signal | n | ECE | Brier | AUROC |",
        "|---|---|---|---|---|---|",
    ]
    for e in rep["lanes"]:
        for c in e["calibration"].values():
            out.append(
                f"| {e['lane']} | {c['name']} | {c['n']} | {num(c['ece'])} | {num(c['brier'])} | {num(c['auroc'])} |"
            )
    tagged = sum(e["human_tagged"] for e in rep["lanes"])
    if tagged:
        dis = sum(e["human_disagreements"] for e in rep["lanes"])
        out += [
            "",
            f"Human tags override the automatic grade: {tagged} answers tagged, {dis} of them disagreed with it.",
        ]
    if svgs:
        out += ["", "## Reliability diagrams", ""]
        for lane, path in svgs.items():
            out.append(f"![{lane}]({Path(path).name})")
    return "\n".join(out) + "\n"


def reliability_svg(
    title: str, reliability: list[scores.ReliabilityBin], width: int = 360, height: int = 360
) -> str:
    """A reliability diagram: confidence bins on x, accuracy on y, the diagonal for reference."""
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
            f'<text x="{x((lo + hi) / 2)}" y="{y(b["accuracy"]) - 3}" text-anchor="middle" font-size="9">n={b["n"]}</text>'
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
        if cal:
            path = folder / f"run{rep['run']['id']}-lane{i + 1}-reliability.svg"
            path.write_text(reliability_svg(f"{e['lane']} ({cal['name']})", cal["reliability"]))
            svgs[e["lane"]] = str(path)
    md = folder / f"run{rep['run']['id']}-report.md"
    md.write_text(markdown(rep, svgs))
    return md
