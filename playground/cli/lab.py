"""The lab: probe runs, their report, Is-It-Valid, and interrogating a model's knowledge boundary."""

from __future__ import annotations

import json
from collections import Counter
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
from playground.core.textsafe import visible

if TYPE_CHECKING:
    from playground.core.lab.probes import Probe

PROBE_LANES = "base:few-shot,base:few-shot+abstain@0.75,tuned:chat,tuned:chat+abstain@0.75"

KALAI_NOTE = (
    "Kalai et al. (2025): generative error ≳ 2 × classifier error − max|V|/min|E| − δ. Here each fact has one true "
    "and one false statement (|V| = |E| = 1 per question), so the correction term is large: read the bound as a "
    "tendency, not a guarantee. The paper predicts the base model is the better-calibrated classifier."
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


@click.command()
@_set_option("invented, facts, unknowable, letters, all, or a .csv / .jsonl file.")
@opt.lanes_option(PROBE_LANES)
@click.option(
    "--samples",
    type=click.IntRange(0, 20),
    default=0,
    show_default=True,
    help="Extra answers per question at temperature 1 (for agreement).",
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
    help="Ask each model P(True) of its own answer.",
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
def probe(resume_id, db_path, models_dir, base, tuned, search_backend, corpus_path, **settings):
    """Run a probe set on every lane, grade the answers, and log everything."""
    from playground.core.lab.probes import load_set, sample
    from playground.core.lab.runner import make_judge, run_probes, start_run

    log = SessionLog(db_path or default_db_path())
    cat = opt.catalog(models_dir, base, tuned)
    s = settings
    if resume_id is not None:
        s = _resumed(log, resume_id, settings["ptrue"], settings["judge_lane"])
    everything = load_set(s["set_name"], s["seed"])
    probes = sample(everything, s["limit"], s["seed"])
    specs = parse_lanes(s["lanes_text"])
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
    run_id = resume_id or start_run(
        log,
        s["set_name"],
        s["seed"],
        [spec.text for spec in specs],
        s["samples"],
        s["limit"],
        s["max_tokens"],
        {"ptrue": s["ptrue"], "judge": s["judge_lane"]},
    )
    with _progress_bar(Console(stderr=True)) as bar:
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
        "acc. if attempted",
        "F",
        "correct refusal",
        "false accept",
        "false refuse",
    ):
        t.add_column(col, justify="left" if col == "lane" else "right")
    for e in rep["lanes"]:
        s = e["simpleqa"]
        t.add_row(
            e["lane"],
            str(s["n"]),
            rep_mod.pct(s["correct"]),
            rep_mod.pct(s["incorrect"]),
            rep_mod.pct(s["not_attempted"]),
            rep_mod.pct(s["accuracy_given_attempted"]),
            rep_mod.num(s["f"]),
            rep_mod.pct(e["correct_refusal"]),
            rep_mod.pct(e["false_acceptance"]),
            rep_mod.pct(e["false_refusal"]),
        )
    return t


def _targets_table(rep: dict) -> Table:
    from playground.core.lab.scores import TARGETS

    t = Table(title="Score with confidence target t (wrong costs t/(1-t))")
    t.add_column("lane")
    for tt in TARGETS:
        t.add_column(f"t={tt:g}", justify="right")
    for e in rep["lanes"]:
        t.add_row(e["lane"], *[f"{e['targets'][tt]:+.3f}" for tt in TARGETS])
    return t


def _calibration_table(rep: dict) -> Table:
    from playground.core.lab import report as rep_mod

    t = Table(title="Calibration")
    for col in ("lane", "signal", "n", "ECE", "Brier", "AUROC"):
        t.add_column(col, justify="left" if col in ("lane", "signal") else "right")
    for e in rep["lanes"]:
        for c in e["calibration"].values():
            t.add_row(
                e["lane"],
                c["name"],
                str(c["n"]),
                rep_mod.num(c["ece"]),
                rep_mod.num(c["brier"]),
                rep_mod.num(c["auroc"]),
            )
    return t


def _print_reliability(console: Console, rep: dict, signal: str) -> None:
    """A terminal bar chart per lane: accuracy by confidence bin, against the diagonal."""
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
        plt.title(f"{e['lane']}: accuracy by {cal['name']}")
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
                {"report": str(md), "run": rep["run"], "lanes": rep["lanes"]}, indent=2, default=str
            )
        )
        return
    console = Console()
    run = rep["run"]
    console.print(
        Text(
            f"Probe run {run['id']} · set {run['set_name']} · {run['status']} · {rep['n_items']} answers",
            style="bold",
        )
    )
    console.print(_answers_table(rep))
    console.print(_targets_table(rep))
    console.print(_calibration_table(rep))
    _print_reliability(console, rep, signal)
    tagged = sum(e["human_tagged"] for e in rep["lanes"])
    if tagged:
        console.print(
            f"Human tags override the automatic grade: {tagged} tagged, {sum(e['human_disagreements'] for e in rep['lanes'])} disagreed."
        )
    console.print(Text(f"Written: {md} (and reliability diagrams as SVG beside it)", style="dim"))


def _validity_table(rows: list[dict], sts, n_questions: int) -> Table:
    t = Table(
        title=f"Is-It-Valid on {len(sts)} statements ({sum(x.valid for x in sts)} true, {sum(not x.valid for x in sts)} false) vs. generation on {n_questions} questions"
    )
    for col in (
        "lane",
        "model",
        "kind",
        "classifier error",
        "AUROC",
        "2 × error",
        "hallucination rate",
    ):
        t.add_column(col, justify="left" if col in ("lane", "model", "kind") else "right")
    for r in rows:
        t.add_row(
            r["lane"],
            r["model"],
            r["kind"] or "?",
            f"{r['iiv_error']:.1%}",
            f"{r['iiv_auroc']:.3f}" if r["iiv_auroc"] is not None else "-",
            f"{r['two_times_error']:.1%}",
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
    help="Facts used, a seeded sample stratified by category (each gives a true and a false statement).",
)
@click.option(
    "--invented",
    "n_invented",
    type=click.IntRange(0, 200),
    default=20,
    show_default=True,
    help="Statements about invented entities.",
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
    from playground.core.lab.probes import invented, load_set, sample
    from playground.core.lab.validity import compare, statements

    log = SessionLog(db_path or default_db_path())
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
        rows = compare(pg, questions, sts, max_tokens, status=status.update)
    log.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    Console().print(_validity_table(rows, sts, len(questions)))
    Console().print(Text(KALAI_NOTE, style="dim"))


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
@click.option("--samples", type=click.IntRange(1, 20), default=4, show_default=True)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=40,
    show_default=True,
    help="Questions used: a seeded sample stratified by category (or by document).",
)
@opt.seed_option(0)
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
    seed,
    output,
    as_json,
    db_path,
    models_dir,
    base,
    tuned,
):
    """Find where a model's knowledge ends (Llama 3 style) and write refusal / answer SFT data."""
    from rich.progress import Progress

    from playground.core.lab import interrogate as itg

    own_docs = bool(docs) and not use_corpus
    snippets = itg.from_docs(list(docs), limit, seed) if own_docs else itg.from_corpus(limit, seed)
    log = SessionLog(db_path or default_db_path())
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
            pg, snippets, samples, seed=seed, progress=lambda d, n: bar.update(task, completed=d)
        )
    records = itg.sft_records(results)
    itg.write_jsonl(records, output)
    kinds = ("known", "unknown", "inconsistent")
    counts = {k: sum(r["status"] == k for r in results) for k in kinds}
    log.close()
    if as_json:
        click.echo(
            json.dumps(
                {"counts": counts, "output": str(output), "results": results},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    source = "extraction templates on " + (
        "your documents ('X is/was a ...' sentences)"
        if own_docs
        else "the shipped corpus (the templates its facts were written from)"
    )
    Console().print(
        Text(
            f"Questions made by {source}: the default models are too small to write good questions themselves.",
            style="dim",
        )
    )
    t = Table(
        title=f"Knowledge boundary of {lane_text}: {len(results)} questions × {samples} samples"
    )
    for col in kinds:
        t.add_column(col, justify="right")
    t.add_row(*[f"{counts[k]} ({counts[k] / len(results):.0%})" for k in kinds])
    Console().print(t)
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


COMMANDS = [probe, report, validity, interrogate, grade_file]
