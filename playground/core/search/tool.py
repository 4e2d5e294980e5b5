"""How search results enter the context: a neutralized, budgeted <SEARCH_RESULTS> block."""

from __future__ import annotations

import re
from collections.abc import Callable

from playground.core.search.backends import Result

RESULTS_OPEN = "<SEARCH_RESULTS>"
RESULTS_CLOSE = "</SEARCH_RESULTS>"
DEFAULT_BUDGET = 384  # tokens for one results block
MAX_SEARCHES = 3

# Markers a page could use to close our block, fake a search, or fake a conversation turn.
_MARKUP = re.compile(
    r"<(?=\s*[/\\]?\s*SEARCH_|\||/?\s*(?:start_of_turn|end_of_turn|bos|eos|s|im_start|im_end)\s*>)",
    re.IGNORECASE,
)


# Control-token strings of the common chat templates (<|im_end|>, <|eot_id|>, <start_of_turn>,
# </s>, [INST]) that a server's tokenizer may read as one control token.
_CONTROL = re.compile(
    r"<(?=\|[^|<>\s]{1,64}\|>|\s*/?\s*(?:start_of_turn|end_of_turn|bos|eos|s|im_start|im_end)\s*>)"
    r"|\[(?=/?INST\])",
    re.IGNORECASE,
)


def neutralize(text: str) -> str:
    """Defuse anything that looks like one of our markers or a chat control token."""
    return _MARKUP.sub("‹", text)


def neutralize_control(text: str) -> tuple[str, int]:
    """Defuse the chat control-token strings in text that a server will tokenize (a remote lane's
    question, turns and system prompt: local lanes tokenize it as plain text); with how many."""
    return _CONTROL.subn(lambda m: "‹" if m.group() == "<" else "［", text)


def results_block(
    results: list[Result] | None,
    error: str | None,
    count_tokens: Callable[[str], int],
    budget: int = DEFAULT_BUDGET,
) -> str:
    """The text appended to the context after a search, at most *budget* tokens long."""
    if error is not None:
        return f"\n{RESULTS_OPEN}\nsearch failed: {neutralize(error)}\n{RESULTS_CLOSE}\n"
    if not results:
        return f"\n{RESULTS_OPEN}\nno results\n{RESULTS_CLOSE}\n"
    head, tail = f"\n{RESULTS_OPEN}\n", f"{RESULTS_CLOSE}\n"
    used = count_tokens(head + tail)
    parts: list[str] = []
    for i, r in enumerate(results, 1):
        entry = (
            f"[{i}] {neutralize(r.title)} ({neutralize(r.source)})\n{neutralize(r.text.strip())}\n"
        )
        n = count_tokens(entry)
        if used + n > budget:
            # Fit as much of this result as the budget allows (the most words that fit).
            words = neutralize(r.text.strip()).split()
            title = f"[{i}] {neutralize(r.title)} ({neutralize(r.source)})\n"

            def fits(k: int, title: str = title, words: list[str] = words) -> bool:
                return (
                    count_tokens(
                        head + "".join(parts) + title + " ".join(words[:k]) + " …\n" + tail
                    )
                    <= budget
                )

            lo, hi = 0, len(words)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid - 1
            if lo >= 8:
                parts.append(title + " ".join(words[:lo]) + " …\n")
            break
        parts.append(entry)
        used += n
    return head + "".join(parts) + tail


LIMIT_BLOCK = f"\n{RESULTS_OPEN}\nno more searches for this answer: answer with what you have\n{RESULTS_CLOSE}\n"
