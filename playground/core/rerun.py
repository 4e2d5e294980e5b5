"""Re-running a recorded session: its questions asked again with today's lanes, as a new session.

The new session names the recorded one as its parent, so `playground sessions` shows the pair and
each answer can be set beside the one recorded for the same turn and lane.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from playground.core.db import SessionLog
from playground.core.engine import Sampling
from playground.core.playground import Playground
from playground.core.sessions import exchanges


class RerunRow(TypedDict):
    """One turn and lane of a re-run: the answer recorded then (None for a new lane) and now."""

    turn: int
    question: str
    lane: str
    recorded: str | None
    now: str
    exchange_id: int | None


def recorded_lanes(sess: dict[str, Any]) -> str:
    """The recorded session's lanes as one lane-spec text, for `parse_lanes`."""
    return ",".join(json.loads(sess["lanes"]))


def questions(log: SessionLog, session_id: str) -> list[tuple[int, str]]:
    """(turn, question) of a session in order, once each (a regenerated answer is one turn)."""
    return list(
        dict.fromkeys(
            (r["turn"], r["question"]) for r in exchanges(log, session_id, latest_only=True)
        )
    )


def rerun(log: SessionLog, pg: Playground, sess: dict[str, Any], max_tokens: int) -> list[RerunRow]:
    """Ask every question of `sess` again in `pg`'s lanes, logged as a child session of it.

    Returns one row per turn and lane: the question, the answer recorded then (None where that lane
    did not exist) and the answer now, with the new exchange's id. `pg.session_id` is the new one.
    """
    pg.session_id = log.new_session(
        [lane.spec.text for lane in pg.lanes],
        title=f"re-run of {sess['id']}",
        parent_id=sess["id"],
    )
    out: list[RerunRow] = []
    for turn, q in questions(log, sess["id"]):
        res = pg.ask(q, Sampling(max_tokens=max_tokens))
        old = {
            r["lane"]: r for r in exchanges(log, sess["id"], latest_only=True) if r["turn"] == turn
        }
        for r in res:
            before = old.get(r.lane.spec.text)
            out.append(
                {
                    "turn": turn,
                    "question": q,
                    "lane": r.lane.spec.text,
                    "recorded": before["output_text"] if before else None,
                    "now": r.text,
                    "exchange_id": r.exchange_id,
                }
            )
    return out
