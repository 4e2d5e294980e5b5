"""Untrusted text made safe to show on a terminal.

Model output, questions, search results, corpus documents and server messages can hold terminal
control sequences: a model wrote an OSC 52 clipboard write (`ESC ] 52 ; c ; … BEL`) on its own,
and `ESC [2J` clears the screen. Shown raw, they act on the user's terminal. Here every control
character becomes a visible stand-in of the same length (one character for one), so a sequence
is shown as text (`␛]52;c;YQ==␇`) and styles laid over the text stay in place. The database and
`--json` keep the exact text; only what reaches a screen goes through `visible`.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline -> the Unicode "control pictures" (␀ … ␟); DEL -> ␡;
# C1 controls (8-bit CSI, OSC, DCS, …) -> ␛, the 7-bit ESC they stand for; the bidirectional
# overrides and isolates, which reorder what is shown, -> �.
_C0 = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_TABLE = {
    **_C0,
    0x7F: "\u2421",
    **{c: "\u241b" for c in range(0x80, 0xA0)},
    **{c: "\ufffd" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))},
}
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """*text* with every control character replaced by a visible stand-in of the same length."""
    if not _UNSAFE.search(text):
        return text
    return text.translate(_TABLE)


def is_safe(text: str) -> bool:
    """Whether *text* can reach a terminal as it is."""
    return _UNSAFE.search(text) is None


# In JSON text these can only stand inside strings (JSON's own syntax is ASCII), where json.dumps
# with ensure_ascii=False leaves them raw: DEL, the C1 controls, the bidirectional controls.
_JSON_RAW = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def json_safe(json_text: str) -> str:
    """JSON text (a document or JSON lines) with every control character json.dumps left raw
    written as a \\uXXXX escape: safe on a terminal, and the same strings once decoded."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)
