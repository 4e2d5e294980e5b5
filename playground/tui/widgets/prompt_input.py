"""The question box: Enter sends, Ctrl+J (or Shift+Enter) adds a line, Up/Down walk the history."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea

NEWLINE_KEYS = ("ctrl+j", "shift+enter", "alt+enter")


class PromptInput(TextArea):
    class Submitted(Message):
        def __init__(self, text: str) -> None:
            self.text = text
            super().__init__()

    def __init__(self, **kwargs) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)
        self.questions: list[str] = []
        self._pos: int | None = None  # index into history while walking it
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                if not self.questions or self.questions[-1] != text:
                    self.questions.append(text)
                self._pos = None
                self.post_message(self.Submitted(text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if event.key == "up" and self.cursor_location[0] == 0 and self.questions:
            event.stop()
            event.prevent_default()
            if self._pos is None:
                self._draft = self.text
                self._pos = len(self.questions)
            self._pos = max(0, self._pos - 1)
            self._show(self.questions[self._pos])
            return
        if (
            event.key == "down"
            and self._pos is not None
            and self.cursor_location[0] == self.document.line_count - 1
        ):
            event.stop()
            event.prevent_default()
            self._pos += 1
            if self._pos >= len(self.questions):
                self._pos = None
                self._show(self._draft)
            else:
                self._show(self.questions[self._pos])
            return
        await super()._on_key(event)

    def _show(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)
