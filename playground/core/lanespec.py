"""Lane specs: `MODEL:MODE[+abstain@T][+search|+search-first]`, parsed and validated."""

from __future__ import annotations

import re
from dataclasses import dataclass

from playground.core.errors import PlaygroundError
from playground.core.events import SearchOption
from playground.core.prompts import MODES, Mode, ModeSpec, is_mode

DEFAULT_LANES = "base:few-shot,tuned:chat"


class LaneSpecError(PlaygroundError):
    pass


@dataclass(frozen=True)
class LaneSpec:
    model: str
    mode: Mode
    abstain: float | None = None
    search: SearchOption | None = None  # None | "tool" (+search) | "first" (+search-first)

    @property
    def text(self) -> str:
        return f"{self.model}:{self.mode_spec().label}"

    def mode_spec(self) -> ModeSpec:
        return ModeSpec(self.mode, self.abstain, search=self.search)


LANE_HELP = "write MODEL:MODE[+abstain@T][+search|+search-first], e.g. base:few-shot or tuned:chat+abstain@0.75"


def parse_lane(text: str) -> LaneSpec:
    """Parse `MODEL:MODE[+abstain@T][+search|+search-first]`, e.g. `tuned:chat+abstain@0.75`."""
    raw = text.strip()
    model, sep, rest = raw.rpartition(":")
    if not sep or not model or not rest:
        raise LaneSpecError(f"invalid lane {text!r}: {LANE_HELP}")
    mode, *options = rest.split("+")
    if not is_mode(mode):
        raise LaneSpecError(
            f"invalid lane {text!r}: unknown mode {mode!r} (use one of {', '.join(MODES)})"
        )
    abstain = None
    search: SearchOption | None = None
    for opt in options:
        if opt in ("search", "search-first"):
            if search is not None:
                raise LaneSpecError(
                    f"invalid lane {text!r}: choose one of +search and +search-first"
                )
            search = "tool" if opt == "search" else "first"
            continue
        m = re.fullmatch(r"abstain(?:@(.*))?", opt)
        if not m:
            raise LaneSpecError(
                f"invalid lane {text!r}: unknown option {opt!r} (known: abstain@T, search, search-first)"
            )
        if m.group(1) is None:
            raise LaneSpecError(
                f"invalid lane {text!r}: abstain needs a confidence target, e.g. abstain@0.75"
            )
        try:
            t = float(m.group(1))
        except ValueError:
            raise LaneSpecError(f"invalid lane {text!r}: {m.group(1)!r} is not a number") from None
        if not 0.0 < t < 1.0:
            raise LaneSpecError(
                f"invalid lane {text!r}: the confidence target must be between 0 and 1 (exclusive), not {t:g}"
            )
        abstain = t
    return LaneSpec(model=model, mode=mode, abstain=abstain, search=search)


MAX_LANES = 16  # what one --lanes may ask for (probe --targets makes more lanes after this)


def parse_lanes(text: str) -> list[LaneSpec]:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise LaneSpecError("no lanes given: e.g. --lanes base:few-shot,tuned:chat")
    if len(parts) > MAX_LANES:
        raise LaneSpecError(
            f"{len(parts)} lanes given: at most {MAX_LANES} at once (the app shows up to 4)"
        )
    return [parse_lane(p) for p in parts]
