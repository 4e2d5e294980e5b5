"""Untrusted text on screen: Textual passes an ESC in a widget's text straight to the terminal (Rich
drops only BEL, backspace and a few others), so a model's `ESC ] 52 ; …` would write the clipboard.
`SafeStatic` shows such text with the visible stand-ins of `core.textsafe`, one character for one,
so the styles laid over the text stay where they were."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from playground.core.textsafe import is_safe, visible


def safe(content: Any) -> Any:
    """*content* (a Rich Text or a string) with control characters made visible; other renderables
    are returned as they are (build their cells from `visible` text)."""
    if isinstance(content, Text):
        if is_safe(content.plain):
            return content
        shown = content.copy()
        shown.plain = visible(content.plain)  # same length: the spans still fit
        return shown
    if isinstance(content, str):
        return visible(content)
    return content


class SafeStatic(Static):
    """A Static whose text can come from a model, a user, a document or a server."""

    def __init__(self, content: Any = "", **kwargs: Any) -> None:
        super().__init__(safe(content), **kwargs)

    def update(self, content: Any = "", *, layout: bool = True) -> None:
        super().update(safe(content), layout=layout)
