"""Workshop demo scripts: TOML files, an ordered list of steps with narration.

The default demo ships with the package (playground/data/demos/hallucination.toml); a copy in
sessions/demos/ under the current folder, edited for a workshop, comes first.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from playground.core.errors import PlaygroundError
from playground.core.lanespec import LaneSpec, parse_lanes

STEP_KEYS = {"title", "question", "lanes", "narration", "max_tokens", "prefill", "tokens"}


class DemoError(PlaygroundError):
    pass


@dataclass(frozen=True)
class Step:
    title: str
    question: str
    lanes: list[LaneSpec]
    narration: str
    max_tokens: int = 96
    prefill: str = ""
    tokens: bool = False  # open the token view after the answer


@dataclass(frozen=True)
class Demo:
    title: str
    steps: list[Step]
    path: Path


DEFAULT_DEMO = "hallucination.toml"


def default_demo_path() -> Path:
    """sessions/demos/hallucination.toml here if there is one, else the copy in the package."""
    here = Path.cwd() / "sessions" / "demos" / DEFAULT_DEMO
    if here.is_file():
        return here
    return Path(str(resources.files("playground") / "data" / "demos" / DEFAULT_DEMO))


def load_demo(path: str | Path) -> Demo:
    p = Path(path)
    if p.exists() and not p.is_file():
        raise DemoError(f"{p} is not a regular file: give a demo .toml file")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DemoError(f"demo file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DemoError(f"cannot read {p}: {e}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DemoError(f"{p}: {e}") from e
    step_lines = [
        i + 1 for i, line in enumerate(text.splitlines()) if re.match(r"\s*\[\[step\]\]", line)
    ]
    steps_data = data.get("step")
    if not isinstance(steps_data, list) or not steps_data:
        raise DemoError(f"{p}: no steps: add [[step]] tables with a question, lanes and narration")
    steps = []
    for i, raw in enumerate(steps_data):
        where = f"{p}, step {i + 1} (line {step_lines[i] if i < len(step_lines) else '?'})"
        unknown = set(raw) - STEP_KEYS
        if unknown:
            raise DemoError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(STEP_KEYS))})"
            )
        q = raw.get("question")
        if not isinstance(q, str) or not q.strip():
            raise DemoError(f"{where}: 'question' is missing or empty")
        try:
            lanes = parse_lanes(str(raw.get("lanes", "base:few-shot,tuned:chat")))
        except PlaygroundError as e:
            raise DemoError(f"{where}: {e}") from e
        if len(lanes) > 4:
            raise DemoError(f"{where}: at most 4 lanes")
        mt = raw.get("max_tokens", 96)
        if not isinstance(mt, int) or isinstance(mt, bool) or not 1 <= mt <= 4096:
            raise DemoError(f"{where}: max_tokens must be a whole number from 1 to 4096")
        steps.append(
            Step(
                title=str(raw.get("title", f"Step {i + 1}")),
                question=q.strip(),
                lanes=lanes,
                narration=str(raw.get("narration", "")).strip(),
                max_tokens=mt,
                prefill=str(raw.get("prefill", "")),
                tokens=bool(raw.get("tokens", False)),
            )
        )
    return Demo(str(data.get("title", p.stem)), steps, p)
