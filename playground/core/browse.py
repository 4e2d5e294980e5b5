"""The session log in Datasette: where its executable is, and the canned queries it opens with."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any


def datasette_executable() -> str | None:
    """`datasette` on the PATH, or beside this Python (a virtualenv not activated); None if absent."""
    beside = Path(sys.executable).parent / "datasette"
    return shutil.which("datasette") or (str(beside) if beside.exists() else None)


def datasette_metadata(name: str) -> dict[str, Any]:
    """Datasette metadata for the database called `name`: a title and the canned queries."""
    queries = {
        "hallucination_rate_by_model_and_mode": {
            "title": "Hallucination rate by model and mode (tagged answers)",
            "sql": "select e.model_id, e.mode, count(*) as tagged, round(avg(t.label = 'hallucination'), 3) as hallucination_rate from tags t join exchanges e on e.id = t.exchange_id group by 1, 2 order by 4 desc",
        },
        "speed_by_model": {
            "title": "Tokens per second by model",
            "sql": "select model_id, count(*) as answers, round(avg(tokens_per_second), 1) as tokens_per_second, round(avg(time_to_first_token) * 1000) as first_token_ms from exchanges where status = 'complete' group by 1",
        },
        "searches_by_lane": {
            "title": "How often each lane searched",
            "sql": "select e.lane, count(s.id) as searches, count(distinct e.id) as answers from exchanges e left join searches s on s.exchange_id = e.id group by 1",
        },
    }
    return {"title": "playground log", "databases": {name: {"queries": queries}}}
