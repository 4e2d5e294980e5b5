"""The lab: probe runs, their report, Is-It-Valid, and interrogating a model's knowledge boundary."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from playground.cli import options as opt
from playground.core.db import SessionLog
from playground.core.errors import PlaygroundError
from playground.core.lab.report import SIGNALS
from playground.core.lanespec import parse_lanes
from playground.core.locations import default_db_path
from playground.core.playground import Playground
from playground.core.textsafe import json_safe, visible

if TYPE_CHECKING:
    from playground.core.lab.probes import Probe

PROBE_LANES = "base:few-shot,base:few-shot+abstain@0.75,tuned:chat,tuned:chat+abstain@0.75"

KALAI_NOTE = (
    "Kalai et al. (2025), Theorem 1: generative error ≥ 2 × Is-It-Valid error − max|V_c|/min|E_c| − δ. "
    "Here each question has one true and one false statement, so the ratio is 1 and the bound reads "
    "2 × error − 1 − δ: it says nothing unless the classifier errs on more than half the statements. "
    "Read the columns side by side as a tendency; this does not test the theorem."
)
FAMILIES_NOTE = (
    "The models differ in family (and size, quantization), so a difference between them is not only "
    "base vs. instruction-tuned: this cannot test whether post-training hurts calibration."
)


def _set_option(help: str):
    return click.option("--set", "set_name", default="facts", show_default=True, help=help)


def _resumed(log: SessionLog, resume_id: int, ptrue: bool, judge_lane: str | None) -> dict:
    """The settings of the probe run being resumed; they replace those given on the command line."""
    from playground.core.lab.runner import get_run

    run = get_run(log, resume_id)
    opts = json.loads(run["options"] or "{}")
    return {
        "set_name": run["set_name"],
        "seed": run["seed"],
        "samples": run["samples"],
        "limit": run["max_items"],
        "max_tokens": run["max_tokens"],
        "lanes_text": ",".join(json.loads(run["lanes"])),
        "ptrue": opts.get("ptrue", ptrue),
        "judge_lane": opts.get("judge", judge_lane),
    }


def _drawn(
    chosen: list[Probe], everything: list[Probe], seed: int, by_category: bool = False
) -> None:
    """Say on stderr what a --limit sample drew: counts per type (or per category)."""
    from playground.core.lab.probes import describe, stratum

    if len(chosen) < len(everything):
        counts = (
            ", ".join(f"{k} {v}" for k, v in Counter(stratum(p)[1] for p in chosen).items())
            if by_category
            else describe(chosen)
        )
        click.echo(
            f"drew {len(chosen)} of {len(everything)} questions (seed {seed}): {visible(counts)}",
            err=True,
        )


def _progress_bar(console: Console):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]probe run {task.fields[run]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[q]}"),
        console=console,
        transient=False,
    )


@contextlib.contextmanager
def _terminated_as_exit() -> Iterator[None]:
    """SIGTERM (`timeout`, `kill`) raises SystemExit while a run is going, so the run is marked
    "error" (terminated) rather than left "running"."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _parse_targets(text: str | None) -> list[float]:
    """`--targets 0.5,0.75,0.9`: confidence targets, each in (0, 1)."""
    if not text:
        return []
    out: list[float] = []
    for part in text.split(","):
        try:
            t = float(part)
        except ValueError:
            raise PlaygroundError(
                f"--targets: {part.strip()!r} is not a number; write e.g. --targets 0.5,0.75,0.9"
            ) from None
        if not 0.0 < t < 1.0:
            raise PlaygroundError(f"--targets: {t:g} is not between 0 and 1 (exclusive)")
        out.append(t)
    return out


def _expand_targets(specs: list, targets: list[float]) -> list:
    """One prompted lane per target: each lane with +abstain@t becomes one lane per t in *targets*
    (in order, duplicates dropped)."""
    from dataclasses import replace

    if not targets:
        return specs
    if not any(spec.abstain is not None for spec in specs):
        raise PlaygroundError(
            "--targets needs a lane with an abstain prompt in --lanes, e.g. tuned:chat+abstain@0.75"
        )
    out, seen = [], set()
    for spec in specs:
        for new in (
            [replace(spec, abstain=t) for t in targets] if spec.abstain is not None else [spec]
        ):
            if new.text not in seen:
                seen.add(new.text)
                out.append(new)
    return out


def _probe_command(s: dict, lanes: str, extra: dict) -> str:
    """The command line that reproduces a probe run (the lanes as the run has them)."""
    import shlex

    parts = ["playground", "probe", "--set", str(s["set_name"]), "--lanes", lanes]
    parts += ["--seed", str(s["seed"]), "--samples", str(s["samples"])]
    parts += ["--max-tokens", str(s["max_tokens"])]
    if s["limit"]:
        parts += ["--limit", str(s["limit"])]
    if not s["ptrue"]:
        parts.append("--no-ptrue")
    if s["judge_lane"]:
        parts += ["--judge", s["judge_lane"]]
    for flag, value in extra.items():
        if value:
            parts += [flag, str(value)]
    return shlex.join(parts)


@click.command()
@_set_option("invented, facts, unknowable, letters, all, or a .csv / .jsonl file.")
@opt.lanes_option(PROBE_LANES)
@click.option(
    "--targets",
    "targets_text",
    default=None,
    metavar="T1,T2,...",
    help="Run each +abstain lane once per confidence target, e.g. 0.5,0.75,0.9 (abstain@t each).",
)
@click.option(
    "--samples",
    type=click.IntRange(0, 20),
    default=0,
    show_default=True,
    help="Extra answers per question at temperature 1 (for agreement and semantic entropy).",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=None,
    help="A random sample of N questions, stratified by type and category (seeded by --seed).",
)
@opt.seed_option(0, "Seed for invented entities, the --limit sample and the samples.")
@opt.max_tokens_option(64, most=4096)
@click.option(
    "--ptrue/--no-ptrue",
    default=True,
    show_default=True,
    help="Ask each model P(True) of its own answer (both option orders; not on server lanes).",
)
@click.option(
    "--judge",
    "judge_lane",
    default=None,
    help="A lane that grades answers with the three-way rubric, e.g. tuned:chat.",
)
@click.option("--resume", "resume_id", type=int, default=None, help="Continue an interrupted run.")
@opt.db_option
@opt.models_options
@opt.search_options
def probe(
    resume_id,
    targets_text,
    db_path,
    models_dir,
    base,
    tuned,
    search_backend,
    corpus_path,
    **settings,
):
    """Run a probe set on every lane, grade the answers, and log everything."""
    from playground.core.lab.probes import load_set, sample
    from playground.core.lab.runner import make_judge, run_probes, start_run

    log = SessionLog(opt.db_location(db_path))
    cat = opt.catalog(models_dir, base, tuned)
    s = settings
    if resume_id is not None:
        s = _resumed(log, resume_id, settings["ptrue"], settings["judge_lane"])
        specs = parse_lanes(s["lanes_text"])
    else:
        specs = _expand_targets(parse_lanes(s["lanes_text"]), _parse_targets(targets_text))
    everything = load_set(s["set_name"], s["seed"])
    probes = sample(everything, s["limit"], s["seed"])
    pg = Playground(cat, specs, log, search_backend=search_backend, corpus_path=corpus_path)
    opt.check_lanes(pg)
    _drawn(probes, everything, s["seed"])
    judge = None
    if s["judge_lane"]:
        pg_judge = Playground(cat, parse_lanes(s["judge_lane"]), None, pool=pg.pool)
        try:  # an unknown judge lane would record no verdicts at all
            opt.check_lanes(pg_judge)
        except PlaygroundError as e:
            raise PlaygroundError(f"--judge {s['judge_lane']}: {e}") from e
        if len(pg_judge.lanes) != 1:
            raise PlaygroundError(f"--judge takes one lane, not {s['judge_lane']!r}")
        judge = make_judge(pg_judge)
    lanes_text = ",".join(spec.text for spec in specs)
    command = _probe_command(
        s,
        lanes_text,
        {
            "--models-dir": models_dir,
            "--base": base,
            "--tuned": tuned,
            "--db": db_path,
            "--search-backend": search_backend if search_backend != "offline" else None,
            "--corpus": corpus_path,
        },
    )
    run_id = resume_id or start_run(
        log,
        s["set_name"],
        s["seed"],
        [spec.text for spec in specs],
        s["samples"],
        s["limit"],
        s["max_tokens"],
        {"ptrue": s["ptrue"], "judge": s["judge_lane"]},
        {"command": command},
    )
    with _terminated_as_exit(), _progress_bar(Console(stderr=True)) as bar:
        task = bar.add_task("probe", total=len(probes) * (1 + s["samples"]), run=run_id, q="")
        run_probes(
            pg,
            log,
            run_id,
            probes,
            s["samples"],
            s["max_tokens"],
            s["seed"],
            s["ptrue"],
            judge,
            progress=lambda p: bar.update(task, completed=p.done, q=Text(visible(p.question[:50]))),
        )
    click.echo(
        f"probe run {run_id} complete: {len(probes)} questions × {len(specs)} lanes logged to {log.path}; see `playground report {run_id}`"
    )
    log.close()


def _answers_table(rep: dict) -> Table:
    from playground.core.lab import report as rep_mod

    t = Table(title="Answers (greedy)")
    for col in (
        "lane",
        "n",
        "correct",
        "wrong",
        "no answer",
        "acc. if attempted [95% CI]",
        "F",
        "correct refusal",
        "false accept",
        "false refuse",
    ):
        t.add_column(col, justify="left" if col == "lane" else "right", no_wrap=col == "lane")
    for e in rep["lanes"]:
        s = e["simpleqa"]
        t.add_row(
            Text(visible(e["lane"])),
            str(s["n"]),
            rep_mod.pct(s["correct"]),
            rep_mod.pct(s["incorrect"]),
            rep_mod.pct(s["not_attempted"]),
            f"{rep_mod.pct(s['accuracy_given_attempted'])} {rep_mod.interval(e['accuracy_ci'], share=True)}",
            rep_mod.num(s["f"]),
            rep_mod.pct(e["correct_refusal"]),
            rep_mod.pct(e["false_acceptance"]),
            rep_mod.pct(e["false_refusal"]),
        )
    return t


def _targets_table(rep: dict) -> Table:
    from playground.core.lab import report as rep_mod
    from playground.core.lab.scores import TARGETS

    t = Table(
        title="Score with confidence target t (wrong costs t/(1-t)) [95% CI]",
        caption=f"{rep_mod.RESCORED} re-scored: answers prompted with another target (or none), only "
        "scored here with t. `probe --targets 0.5,0.75,0.9` runs one prompted lane per t.",
    )
    t.add_column("lane", no_wrap=True)
    t.add_column("prompted at")
    for tt in TARGETS:
        t.add_column(f"t={tt:g}", justify="right")
    for e in rep["lanes"]:
        prompted = f"abstain@{e['prompted_t']:g}" if e["prompted_t"] is not None else "no target"
        t.add_row(
            Text(visible(e["lane"])), prompted, *[rep_mod.target_cell(e, tt) for tt in TARGETS]
        )
    return t


def _rules_table(rep: dict) -> Table | None:
    from playground.core.lab import report as rep_mod

    rules = [e for e in rep["lanes"] if e["rule"] is not None]
    if not rules:
        return None
    t = Table(title="Does each abstaining lane keep its rule? (accuracy if attempted ≥ t)")
    for col in ("lane", "t", "attempted", "acc. if attempted [95% CI]", "≥ t"):
        t.add_column(col, justify="left" if col == "lane" else "right")
    for e in rules:
        r = e["rule"]
        t.add_row(
            Text(visible(e["lane"])),
            f"{r['t']:g}",
            str(r["attempted"]),
            f"{rep_mod.pct(r['accuracy'])} {rep_mod.interval(r['ci'], share=True)}",
            rep_mod.rule_cell(r),
        )
    return t


SHORT = {
    "conf_sequence": "sequence p",
    "conf_normalized": "mean-token p",
    "conf_first": "first-token p",
    "conf_min": "min-token p",
    "conf_ptrue": "P(True)",
    "agreement": "agreement",
    "semantic_entropy": "sem. entropy ↓",
    "n_tokens": "length ↓ (baseline)",
}


def _calibration_tables(rep: dict) -> list[Table]:
    """One table per lane: each signal's ECE, Brier and AUROC on attempted answers."""
    from playground.core.lab import report as rep_mod
    from playground.core.lab.scores import MIN_CLASS

    out = []
    for e in rep["lanes"]:
        t = Table(
            title=visible(f"Calibration of {e['lane']} on attempted answers [95% CI]"),
            caption=f"{rep_mod.TOO_FEW} too few: < {MIN_CLASS} right or < {MIN_CLASS} wrong. ↓: lower ranks "
            "higher. A signal whose AUROC does not beat the length baseline says little beyond length.",
        )
        for col in ("signal", "n", "right", "ECE", "Brier", "AUROC", "note"):
            t.add_column(col, justify="left" if col in ("signal", "note") else "right")
        for key, c in e["calibration"].items():
            t.add_row(
                SHORT.get(key, c["name"]),
                str(c["n"]),
                str(c["correct"]),
                rep_mod.with_ci(c["ece"], c["ci"]["ece"]),
                rep_mod.with_ci(c["brier"], c["ci"]["brier"]),
                rep_mod.auroc_cell(c),
                rep_mod.cal_note(c, short=True),
                style="dim" if c["baseline"] else None,
            )
        out.append(t)
    return out


def _print_reliability(console: Console, rep: dict, signal: str) -> None:
    """A terminal bar chart per lane: accuracy by confidence bin, against the diagonal. The title
    is printed above the chart (plotext drops a title wider than the plot: lanes with a long spec,
    such as base:few-shot+abstain@0.75, lost theirs)."""
    import plotext as plt

    for e in rep["lanes"]:
        cal = e["calibration"].get(signal)
        if not cal or not cal["reliability"]:
            continue
        plt.clear_figure()
        plt.plotsize(60, 14)
        xs = [(b["bin"][0] + b["bin"][1]) / 2 for b in cal["reliability"]]
        plt.bar(xs, [b["accuracy"] for b in cal["reliability"]], width=0.08)
        plt.plot([0, 1], [0, 1], marker="dot")
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plt.xticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
        console.print(
            Text(
                visible(
                    f"{e['lane']}: accuracy by {cal['name']} ({cal['n']} attempted, {cal['correct']} right)"
                ),
                style="bold",
            )
        )
        console.print(Text.from_ansi(plt.build()))


@click.command()
@click.argument("run_id", type=int, required=False)
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("sessions/reports"),
    show_default=True,
    help="Folder for the Markdown report and SVG diagrams.",
)
@click.option(
    "--signal",
    type=click.Choice(list(SIGNALS)),
    default="conf_normalized",
    show_default=True,
    help="Confidence signal of the reliability diagrams.",
)
@opt.json_option()
@opt.db_option
def report(run_id, output, signal, as_json, db_path):
    """Tables and reliability diagrams of a probe run (the latest by default)."""
    from playground.core.lab import report as rep_mod

    path = db_path or default_db_path()
    if not path.exists():
        raise PlaygroundError(f"no session database at {path}: run `playground probe` first")
    log = SessionLog(path)
    rep = rep_mod.build(log, run_id)
    md = rep_mod.write(rep, output, signal)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "report": str(md),
                    "run": rep["run"],
                    "provenance": rep["provenance"],
                    "questions": rep["questions"],
                    "families_note": rep["families_note"],
                    "bootstrap": rep["bootstrap"],
                    "lanes": rep["lanes"],
                },
                indent=2,
                default=str,
            )
        )
        return
    console = Console()
    run = rep["run"]
    status = run["status"] + (f" ({run['error']})" if run.get("error") else "")
    console.print(
        Text(
            visible(
                f"Probe run {run['id']} · set {run['set_name']} · {status} · {rep['n_items']} answers"
            ),
            style="bold",
        )
    )
    for line in rep_mod.provenance_lines(rep):
        console.print(Text(visible(line), style="dim"))
    if rep["families_note"]:
        console.print(Text(visible(rep["families_note"]), style="yellow"))
    console.print(_answers_table(rep))
    console.print(_targets_table(rep))
    if rules := _rules_table(rep):
        console.print(rules)
    for table in _calibration_tables(rep):
        console.print(table)
    for e in rep["lanes"]:
        for note in e["notes"]:
            console.print(Text(visible(note), style="dim"))
    _print_reliability(console, rep, signal)
    tagged = sum(e["human_tagged"] for e in rep["lanes"])
    if tagged:
        console.print(
            f"Human tags override the automatic grade: {tagged} tagged, {sum(e['human_disagreements'] for e in rep['lanes'])} disagreed."
        )
    console.print(Text(f"Written: {md} (and reliability diagrams as SVG beside it)", style="dim"))


def _validity_table(rows: list[dict], sts, n_questions: int) -> Table:
    from playground.core.lab import report as rep_mod

    t = Table(
        title=f"Is-It-Valid on {len(sts)} statements ({sum(x.valid for x in sts)} true, {sum(not x.valid for x in sts)} false) vs. generation on {n_questions} questions",
        caption="Classifier error: threshold fitted on one half of the statements, errors counted on the other (2-fold, both ways).",
    )
    for col in (
        "lane",
        "model",
        "kind",
        "held-out error",
        "AUROC",
        "2 × error",
        "hallucination rate",
    ):
        t.add_column(col, justify="left" if col in ("lane", "model", "kind") else "right")
    for r in rows:
        t.add_row(
            Text(visible(r["lane"])),
            Text(visible(r["model"])),
            r["kind"] or "?",
            rep_mod.pct(r["iiv_error"]),
            rep_mod.num(r["iiv_auroc"]),
            rep_mod.pct(r["two_times_error"]),
            f"{r['hallucination_rate']:.1%}",
        )
    return t


@click.command()
@_set_option("Facts to turn into true and false statements.")
@opt.lanes_option("base:few-shot,tuned:chat", "Lanes whose models classify and generate.")
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Facts used, a seeded sample stratified by category (each gives a true statement; as many false ones are made).",
)
@click.option(
    "--invented",
    "n_invented",
    type=click.IntRange(0, 200),
    default=20,
    show_default=True,
    help="False statements about invented entities (at most half the false ones).",
)
@opt.seed_option(0)
@opt.max_tokens_option(48, most=512)
@opt.json_option()
@opt.db_option
@opt.models_options
def validity(
    set_name,
    lanes_text,
    limit,
    n_invented,
    seed,
    max_tokens,
    as_json,
    db_path,
    models_dir,
    base,
    tuned,
):
    """Is-It-Valid: each model as a classifier of true vs. false statements, next to how often it
    hallucinates when it generates answers to the same questions."""
    import shlex

    from playground.core.lab.probes import invented, load_set, sample
    from playground.core.lab.validity import compare, statements

    log = SessionLog(opt.db_location(db_path))
    cat = opt.catalog(models_dir, base, tuned)
    all_facts = [p for p in load_set(set_name, seed) if p.type == "fact"]
    facts = sample(all_facts, limit, seed)
    ghosts = invented(n=n_invented, seed=seed)
    sts = statements(facts, n_invented, seed)
    pg = Playground(cat, parse_lanes(lanes_text), log)
    opt.check_lanes(pg)
    _drawn(facts, all_facts, seed, by_category=True)
    questions = facts + ghosts
    with Console(stderr=True).status("generating answers…") as status:
        rows = compare(pg, questions, sts, max_tokens, status=status.update, seed=seed)
    log.close()
    command = ["playground", "validity", "--set", set_name, "--lanes", lanes_text]
    command += ["--limit", str(limit), "--invented", str(n_invented), "--seed", str(seed)]
    command += ["--max-tokens", str(max_tokens)]
    for flag, value in (("--models-dir", models_dir), ("--base", base), ("--tuned", tuned)):
        if value:
            command += [flag, str(value)]
    families = {r["family"] for r in rows}
    note = FAMILIES_NOTE if len(families) > 1 and None not in families else None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "command": shlex.join(command),
                    "seed": seed,
                    "statements": {
                        "true": sum(x.valid for x in sts),
                        "false": sum(not x.valid for x in sts),
                    },
                    "questions": len(questions),
                    "families_note": note,
                    "lanes": rows,
                },
                indent=2,
            )
        )
        return
    console = Console()
    console.print(_validity_table(rows, sts, len(questions)))
    console.print(Text(KALAI_NOTE, style="dim"))
    if note:
        console.print(Text(note, style="yellow"))
    for r in rows:
        if r["note"]:
            console.print(Text(visible(f"{r['lane']}: {r['note']}"), style="yellow"))
        console.print(
            Text(visible(f"{r['lane']}: {r['model']}, sha256 {r['sha256'] or '-'}"), style="dim")
        )
    console.print(Text(visible(f"seed {seed}; reproduce: {shlex.join(command)}"), style="dim"))


@click.command()
@click.option(
    "--docs",
    "docs",
    type=click.Path(path_type=Path, exists=True),
    multiple=True,
    help="Documents to make questions from (default: the shipped corpus).",
)
@click.option(
    "--corpus",
    "use_corpus",
    is_flag=True,
    help="Use the shipped corpus (the default without --docs).",
)
@click.option(
    "--lane",
    "lane_text",
    default="tuned:chat",
    show_default=True,
    help="The lane whose model is interrogated.",
)
@click.option(
    "--samples",
    type=click.IntRange(1, 20),
    default=4,
    show_default=True,
    help="Sampled answers per question, besides the greedy one.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=40,
    show_default=True,
    help="Questions used: a seeded sample stratified by category (or by document).",
)
@click.option(
    "--temperature",
    type=click.FloatRange(0.0, 5.0),
    default=0.8,
    show_default=True,
    help="Sampling temperature of the samples (llama.cpp's default).",
)
@click.option(
    "--top-p", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.95, show_default=True
)
@click.option(
    "--top-k", type=click.IntRange(0), default=40, show_default=True, help="0 = no limit."
)
@opt.seed_option(0)
@opt.max_tokens_option(48, most=512)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("sessions/knowledge-sft.jsonl"),
    show_default=True,
    help="Where to write the SFT dataset (chat JSONL).",
)
@opt.json_option()
@opt.db_option
@opt.models_options
def interrogate(
    docs,
    use_corpus,
    lane_text,
    samples,
    limit,
    temperature,
    top_p,
    top_k,
    seed,
    max_tokens,
    output,
    as_json,
    db_path,
    models_dir,
    base,
    tuned,
):
    """Find where a model's knowledge ends (Llama 3 style) and write refusal / answer SFT data."""
    import shlex

    from rich.progress import Progress

    from playground.core.engine import Sampling
    from playground.core.lab import interrogate as itg

    own_docs = bool(docs) and not use_corpus
    snippets = itg.from_docs(list(docs), limit, seed) if own_docs else itg.from_corpus(limit, seed)
    sampling = Sampling(temperature=temperature, top_p=top_p, top_k=top_k)
    log = SessionLog(opt.db_location(db_path))
    pg = Playground(opt.catalog(models_dir, base, tuned), parse_lanes(lane_text), log)
    if pg.lanes[0].model_spec is None:
        raise PlaygroundError(pg.lanes[0].error or "unknown model")
    drawn = Counter(itg.snippet_stratum(x)[1] for x in snippets)
    click.echo(
        f"drew {len(snippets)} questions (seed {seed}): "
        + visible(", ".join(f"{k} {v}" for k, v in drawn.items())),
        err=True,
    )
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("interrogating", total=len(snippets))
        results = itg.interrogate(
            pg,
            snippets,
            samples,
            max_tokens=max_tokens,
            seed=seed,
            progress=lambda d, n: bar.update(task, completed=d),
            sampling=sampling,
        )
    records = itg.sft_records(results)
    itg.write_jsonl(records, output)
    kinds = ("known", "unknown", "inconsistent")
    counts = {k: sum(r["status"] == k for r in results) for k in kinds}
    outcomes = ("correct", "incorrect", "not_attempted")
    answers = {o: sum(r["counts"][o] for r in results) for o in outcomes}
    lane = pg.lanes[0]
    sha = pg.pool.sha256(lane.model) if lane.model is not None else None
    command = ["playground", "interrogate", "--lane", lane_text, "--samples", str(samples)]
    command += ["--limit", str(limit), "--temperature", f"{temperature:g}", "--top-p", f"{top_p:g}"]
    command += ["--top-k", str(top_k), "--seed", str(seed), "--max-tokens", str(max_tokens)]
    for d in docs:
        command += ["--docs", str(d)]
    for flag, value in (("--models-dir", models_dir), ("--base", base), ("--tuned", tuned)):
        if value:
            command += [flag, str(value)]
    log.close()
    if as_json:
        click.echo(
            json_safe(
                json.dumps(
                    {
                        "counts": counts,
                        "answers": answers,
                        "sampling": sampling.as_dict(),
                        "model_sha256": sha,
                        "command": shlex.join(command),
                        "output": str(output),
                        "results": results,
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
        )
        return
    source = "extraction templates on " + (
        "your documents ('X is/was a ...' sentences)"
        if own_docs
        else "the shipped corpus (the templates its facts were written from)"
    )
    console = Console()
    console.print(
        Text(
            f"Questions made by {source}: the default models are too small to write good questions themselves.",
            style="dim",
        )
    )
    q = Table(title="Answers per question (greedy + samples)")
    for col in ("question", "greedy", "right", "wrong", "none", "verdict"):
        q.add_column(col, justify="right" if col in ("right", "wrong", "none") else "left")
    for r in results:
        q.add_row(
            Text(visible(r["question"])),
            r["greedy_grade"].replace("_", " "),
            str(r["counts"]["correct"]),
            str(r["counts"]["incorrect"]),
            str(r["counts"]["not_attempted"]),
            r["status"],
        )
    console.print(q)
    t = Table(
        title=visible(
            f"Knowledge boundary of {lane_text}: {len(results)} questions, {sum(answers.values())} answers "
            f"({answers['correct']} right, {answers['incorrect']} wrong, {answers['not_attempted']} not attempted)"
        )
    )
    for col in kinds:
        t.add_column(col, justify="right")
    t.add_row(*[f"{counts[k]} ({counts[k] / len(results):.0%})" for k in kinds])
    console.print(t)
    model_id = lane.model_spec.id if lane.model_spec else lane.spec.model
    for line in (
        f"Each question: 1 greedy answer and {samples} samples at temperature {temperature:g}, "
        f"top-p {top_p:g}, top-k {top_k} (sample k: seed {seed} × 1000 + k). Known: every "
        "informative answer right; unknown: none right; inconsistent: mixed.",
        f"{lane_text}: {model_id}, sha256 {sha or '-'}",
        f"Reproduce: {shlex.join(command)}",
    ):
        console.print(Text(visible(line), style="dim"))
    click.echo(
        f"wrote {len(records)} SFT examples ({counts['unknown']} refusals, {counts['known']} answers) to {output}"
    )


@click.command("grade")
@click.argument("file", type=click.Path(path_type=Path))
@opt.json_option()
def grade_file(file, as_json):
    """Grade responses from anywhere: a .jsonl or .csv file with question, answers (a list; empty
    for invented and unknowable), type (fact, invented, unknowable, letters) and response."""
    from playground.core.lab.grading import grade, read_responses
    from playground.core.lab.scores import TARGETS, target_score

    rows = read_responses(file)
    grades = [grade(r.probe, r.response) for r in rows]
    outcomes = [g["outcome"] for g in grades]
    summary = {
        "n": len(rows),
        "correct": outcomes.count("correct"),
        "incorrect": outcomes.count("incorrect"),
        "not_attempted": outcomes.count("not_attempted"),
        "target_scores": {f"{t:g}": round(target_score(outcomes, t), 6) for t in TARGETS},
    }
    labeled = [(r.label, o) for r, o in zip(rows, outcomes, strict=True) if r.label]
    if labeled:  # rows with a hand label: how often the grader agrees with it
        summary["labels"] = {"n": len(labeled), "agree": sum(a == b for a, b in labeled)}
    if as_json:
        items = [{"outcome": g["outcome"], "reason": g["reason"]} for g in grades]
        click.echo(json.dumps({"items": items, "summary": summary}, ensure_ascii=False))
        return
    t = Table(title=f"Grades of {visible(str(file))}")
    for col in ("#", "type", "question", "answer", "outcome", "why"):
        t.add_column(col, justify="right" if col == "#" else "left")
    for i, (r, g) in enumerate(zip(rows, grades, strict=True), 1):
        answer = r.response[g["span"][0] : g["span"][1]]
        t.add_row(
            str(i),
            r.probe.type,
            Text(visible(r.probe.question[:60])),
            Text(visible(answer[:60])),
            g["outcome"],
            Text(visible(g["reason"][:80])),
        )
    console = Console()
    console.print(t)
    n = summary["n"]
    console.print(
        f"{n} responses: {summary['correct']} correct, {summary['incorrect']} incorrect, "
        f"{summary['not_attempted']} not attempted · score with target t: "
        + ", ".join(f"t={k} {v:+.3f}" for k, v in summary["target_scores"].items())
    )
    if labeled:
        agree = sum(a == b for a, b in labeled)
        console.print(
            f"agrees with {agree} of {len(labeled)} hand labels ({agree / len(labeled):.1%})"
        )


COMMANDS = [probe, report, validity, interrogate, grade_file]
