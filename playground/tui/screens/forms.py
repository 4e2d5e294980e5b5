"""Small forms: lane settings, a new lane, a note for a tag."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from playground.core.engine import MAX_SEED, EngineError, Sampling
from playground.core.errors import PlaygroundError
from playground.core.lanespec import LaneSpec, parse_lane
from playground.core.prompts import MODES
from playground.tui.widgets.safe import SafeStatic


class TextPrompt(ModalScreen[str | None]):
    """Ask for one line of text (a note, a lane spec); a validator may refuse it with a message."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str = "", value: str = "", validate=None) -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.value = value
        self.validate = validate

    def compose(self) -> ComposeResult:
        with Vertical(classes="form"):
            yield Label(Text(self.title_text), classes="title")
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt-value")
            yield SafeStatic("", id="form-error", classes="error")
            yield Label(Text("Enter to accept · Esc to cancel", style="dim"))

    @on(Input.Submitted)
    def accept(self, event: Input.Submitted) -> None:
        value = event.value
        if self.validate is not None:
            try:
                self.validate(value)
            except PlaygroundError as e:
                self.query_one("#form-error", Static).update(Text(str(e)))
                return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    """A yes/no question before something that cannot be taken back: y or Enter says yes,
    n or Esc says no."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="form"):
            yield SafeStatic(Text(self.question), classes="title")
            yield Label(Text("y or Enter: yes · n or Esc: no", style="dim"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


@dataclass
class LaneSettings:
    spec: LaneSpec
    sampling: Sampling


class LaneSettingsScreen(ModalScreen[LaneSettings | None]):
    """Model, mode, abstention target and sampling for one lane; applies to the next message."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Apply")]

    def __init__(
        self,
        lane_title: str,
        spec: LaneSpec,
        sampling: Sampling,
        model_ids: list[str],
        contexts: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.lane_title = lane_title
        self.spec = spec
        self.sampling = sampling
        self.model_ids = model_ids
        self.contexts = contexts or {}  # model name -> context window in tokens

    def compose(self) -> ComposeResult:
        s = self.sampling
        models = list(dict.fromkeys(["base", "tuned", *self.model_ids, self.spec.model]))
        with Vertical(classes="form"):
            yield Label(
                Text(f"Settings for {self.lane_title} (apply to the next message)"), classes="title"
            )
            with Horizontal(classes="row"):
                yield Label("Model")
                yield Select(
                    [(m, m) for m in models], value=self.spec.model, allow_blank=False, id="model"
                )
            with Horizontal(classes="row"):
                yield Label("Mode")
                yield Select(
                    [(m, m) for m in MODES], value=self.spec.mode, allow_blank=False, id="mode"
                )
            with Horizontal(classes="row"):
                yield Label("Search")
                yield Select(
                    [
                        ("off", "off"),
                        ("tool: the model may search", "tool"),
                        ("first: search before answering", "first"),
                    ],
                    value=self.spec.search or "off",
                    allow_blank=False,
                    id="search",
                )
            with Horizontal(classes="row"):
                yield Label("Abstain T")
                yield Input(
                    value="" if self.spec.abstain is None else f"{self.spec.abstain:g}",
                    placeholder="off, or 0.5 / 0.75 / 0.9",
                    id="abstain",
                )
            with Horizontal(classes="row"):
                yield Label("Temperature")
                yield Input(value=f"{s.temperature:g}", placeholder="0 = greedy", id="temperature")
            with Horizontal(classes="row"):
                yield Label("Top-p")
                yield Input(value=f"{s.top_p:g}", id="top_p")
            with Horizontal(classes="row"):
                yield Label("Top-k")
                yield Input(value=str(s.top_k), placeholder="0 = off", id="top_k")
            with Horizontal(classes="row"):
                yield Label("Max tokens")
                yield Input(value=str(s.max_tokens), id="max_tokens")
            with Horizontal(classes="row"):
                yield Label("Seed")
                yield Input(
                    value="" if s.seed is None else str(s.seed), placeholder="random", id="seed"
                )
            yield SafeStatic("", id="form-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    def _value(self, wid: str) -> str:
        return self.query_one(f"#{wid}", Input).value.strip()

    def _parse(self) -> LaneSettings:
        """The form's values, or a PlaygroundError listing every field that is wrong (one per
        line), so a form with two mistakes needs one correction round, not two."""
        errors: list[str] = []

        def num(wid, kind, label, low=None, high=None):
            raw = self._value(wid)
            try:
                value = kind(raw)
            except ValueError:
                errors.append(
                    f"{label}: {raw!r} is not a valid {'whole number' if kind is int else 'number'}"
                )
                return None
            if low is not None and value < low:
                errors.append(f"{label}: {raw} is below {low}")
                return None
            if high is not None and value > high:
                errors.append(f"{label}: {raw} is above {high:,}")
                return None
            return value

        model = str(self.query_one("#model", Select).value)
        mode = str(self.query_one("#mode", Select).value)
        abstain = self._value("abstain")
        spec = None
        try:
            if abstain and abstain.lower() not in ("off", "none", "-"):
                spec = parse_lane(f"{model}:{mode}+abstain@{abstain}")
            else:
                spec = parse_lane(f"{model}:{mode}")
        except PlaygroundError as e:
            errors.append(f"Abstain T: {e}")
        n_ctx = self.contexts.get(model)
        temperature = num("temperature", float, "Temperature")
        top_p = num("top_p", float, "Top-p")
        top_k = num("top_k", int, "Top-k", 0)
        max_tokens = num(
            "max_tokens",
            int,
            "Max tokens" + (f" ({model}'s context window is {n_ctx:,} tokens)" if n_ctx else ""),
            1,
            n_ctx - 1 if n_ctx else None,
        )
        seed_raw = self._value("seed")
        seed = num("seed", int, "Seed", 0, MAX_SEED) if seed_raw else None
        sampling = None
        if not errors:
            try:
                sampling = Sampling(
                    temperature=temperature,
                    top_p=top_p,
                    top_k=top_k,
                    max_tokens=max_tokens,
                    seed=seed,
                )
            except EngineError as e:
                errors.append(str(e))
        if errors or spec is None or sampling is None:
            raise PlaygroundError("\n".join(errors))
        search = str(self.query_one("#search", Select).value)
        return LaneSettings(
            LaneSpec(spec.model, spec.mode, spec.abstain, None if search == "off" else search),
            sampling,
        )

    def action_save(self) -> None:
        try:
            self.dismiss(self._parse())
        except PlaygroundError as e:
            self.query_one("#form-error", Static).update(Text(str(e)))

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()
