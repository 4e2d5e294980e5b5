"""The program and the machine: the model catalog, doctor, workshop demos, and serving the app."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from playground.cli import options as opt
from playground.core.locations import default_db_path


@click.command()
@opt.models_options
@opt.json_option()
def models(models_dir, base, tuned, as_json):
    """List the model catalog: id, kind, family, size, quantization, chat template, found or missing."""
    from playground.core.catalog import catalog_rows

    cat = opt.catalog(models_dir, base, tuned)
    rows = catalog_rows(cat)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    t = Table(title=f"Models in {cat.folder}")
    for col in ("id", "kind", "family", "params", "size", "quant", "template", "status"):
        t.add_column(col)
    for r in rows:
        star = f" ({r['default']} default)" if r["default"] else ""
        t.add_row(
            r["id"] + star,
            r["kind"],
            r.get("family", "?"),
            r.get("parameters", "-"),
            f"{r['size_mb']} MB" if "size_mb" in r else "-",
            r.get("quantization", "-"),
            ("yes" if r.get("chat_template") else "no") if r["status"] == "found" else "-",
            r["status"] if r["status"] == "found" else f"{r['status']}: {r.get('error')}",
        )
    Console().print(t)


def _print_gpu_build_hint(c: Console, rep: dict) -> None:
    c.print(
        Text(
            "This llama-cpp-python has no GPU backend. To build one (takes a few minutes):",
            style="yellow",
        )
    )
    for name, cmd in rep["install_gpu_build"].items():
        c.print(Text(f"  {name}: {cmd}"))
    c.print(
        Text(
            "then run with --gpu-layers all (or auto), or set n_gpu_layers = -1 in models/models.toml.",
            style="dim",
        )
    )


@click.command()
@opt.models_options
@opt.json_option()
def doctor(models_dir, base, tuned, as_json):
    """What this llama.cpp build and machine can do: backends, devices, memory, threads, models."""
    from playground.core.doctor import report as doctor_report

    rep = doctor_report(opt.catalog(models_dir, base, tuned))
    if as_json:
        click.echo(json.dumps(rep, indent=2))
        return
    c = Console()
    c.print(
        Text(
            f"llama-cpp-python {rep['llama_cpp_python']} · backends: {', '.join(rep['backends'])} · GPU offload: {'yes' if rep['gpu_offload'] else 'no'}",
            style="bold",
        )
    )
    c.print(
        f"CPU: {rep['cpu_threads']} threads available, {rep['cpu_busy_elsewhere']:.1f} kept busy by other processes; a lane gets {rep['threads_per_lane_one_model']} llama.cpp thread(s), two lanes on two models {rep['threads_per_lane_two_models']} each · features: {' '.join(rep['cpu_features'])}"
    )
    c.print(f"Memory: {rep['memory_available_mb']:,} MB free of {rep['memory_total_mb']:,} MB")
    if rep["gpu_devices"]:
        for d in rep["gpu_devices"]:
            c.print(
                f"GPU: {d['name']} · {d['memory_free_mb']:,} MB free of {d['memory_total_mb']:,} MB"
            )
    else:
        c.print("GPU: none seen (no nvidia-smi); this build runs on the CPU")
    t = Table(title="Catalog models")
    for col in ("id", "kind", "size", "n_gpu_layers", "fits in RAM", "fits on GPU"):
        t.add_column(col)
    for m in rep["models"]:
        t.add_row(
            m["id"],
            m["kind"],
            f"{m['size_mb']} MB" if "size_mb" in m else m.get("error", "?"),
            str(m["n_gpu_layers"]),
            {True: "yes", False: "no"}.get(m.get("fits_ram"), "?"),
            {True: "yes", False: "no"}.get(m.get("fits_gpu"), "-"),
        )
    c.print(t)
    if rep["install_gpu_build"]:
        _print_gpu_build_hint(c, rep)


@click.command()
@click.argument(
    "demo_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("sessions/demos/hallucination.toml"),
    required=False,
)
@opt.db_option
@opt.models_dir_option
@opt.corpus_option
@click.option("--check", is_flag=True, help="Only check the demo file and list its steps.")
def demo(demo_file, db_path, models_dir, corpus_path, check):
    """Step through a workshop demo (F6 next step, F7 back) with the narration on screen."""
    from playground.core.demo import load_demo
    from playground.tui.app import make_demo_app

    d = load_demo(demo_file)
    if check:
        click.echo(f"{d.title}: {len(d.steps)} steps")
        for i, step in enumerate(d.steps, 1):
            click.echo(
                f"  {i}. {step.title}: {step.question!r} on {', '.join(s.text for s in step.lanes)}"
            )
        return
    from playground.tui.shutdown import run

    run(make_demo_app(demo_file, db_path or default_db_path(), models_dir, corpus_path))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--public", is_flag=True, help="Allow a host other than this machine's loopback.")
@click.option(
    "--demo",
    "demo_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Serve a demo instead of the app.",
)
@opt.db_option
def serve(host, port, public, demo_file, db_path):
    """Run the app in a web browser (textual-serve), for a projector."""
    from playground.tui.serve import serve as run_server

    run_server(host, port, public, demo_file, db_path)


COMMANDS = [models, doctor, demo, serve]
