"""The queries the rest of playground asks of the session database: sessions, votes, tags, probe
runs, and the canned queries `playground browse` gives Datasette. The SQL lives here and in
store.py only."""

from __future__ import annotations

from typing import Literal

from playground.core.db.store import ExchangeRow, Row, SessionLog, exchange_row


def find_sessions(
    log: SessionLog,
    model: str | None = None,
    mode: str | None = None,
    tag: str | None = None,
    text: str | None = None,
    limit: int = 100,
) -> list[Row]:
    """Sessions with their lanes, turns and tag counts, filtered by model, mode, tag or full text."""
    where, args = [], []
    if model:
        where.append("s.id in (select session_id from exchanges where model_id like ?)")
        args.append(f"%{model}%")
    if mode:
        where.append("s.id in (select session_id from exchanges where mode = ?)")
        args.append(mode)
    if tag:
        where.append(
            "s.id in (select e.session_id from tags t join exchanges e on e.id = t.exchange_id where t.label = ?)"
        )
        args.append(tag)
    if text:
        terms = " ".join('"' + w.replace('"', "") + '"' for w in text.split())
        where.append(
            "s.id in (select e.session_id from exchanges_fts f join exchanges e on e.id = f.rowid where exchanges_fts match ?)"
        )
        args.append(terms)
    sql = f"""
        select s.id, s.created_at, s.lanes, s.title, s.parent_id,
               (select count(distinct e.turn) from exchanges e where e.session_id = s.id) as turns,
               (select count(*) from exchanges e where e.session_id = s.id) as exchanges,
               (select count(*) from tags t join exchanges e on t.exchange_id = e.id where e.session_id = s.id) as tags,
               (select count(*) from exchanges e where e.session_id = s.id
                  and not exists (select 1 from tags t where t.exchange_id = e.id)) as untagged
        from sessions s {"where " + " and ".join(where) if where else ""}
        order by s.created_at desc limit {int(limit)}
    """
    return log.query(sql, args)


def sessions_starting(log: SessionLog, session_id: str) -> list[Row]:
    """The sessions whose id is *session_id* or starts with it."""
    return log.query(
        "select * from sessions where id = ? or id like ?", [session_id, f"{session_id}%"]
    )


def exchanges(log: SessionLog, session_id: str | None = None) -> list[ExchangeRow]:
    """A session's exchanges (all sessions' with None), in turn and lane order."""
    sql = (
        "select * from exchanges"
        + (" where session_id = ?" if session_id else "")
        + " order by session_id, turn, lane_index, id"
    )
    return [exchange_row(r) for r in log.query(sql, [session_id] if session_id else [])]


def tagged_exchange_ids(log: SessionLog) -> set[int]:
    """The exchanges with at least one tag."""
    return {r["exchange_id"] for r in log.query("select distinct exchange_id from tags")}


def tags_in_order(log: SessionLog, session_id: str | None = None) -> list[Row]:
    """Every tag (exchange_id, tagger, label), oldest first, of one session or all."""
    sql = "select t.exchange_id, t.tagger, t.label from tags t join exchanges e on e.id = t.exchange_id"
    sql += " where e.session_id = ?" if session_id else ""
    sql += " order by t.id"
    return log.query(sql, [session_id] if session_id else [])


def latest_tag(log: SessionLog, exchange_id: int, tagger: str) -> Row | None:
    """The newest tag *tagger* gave the exchange."""
    rows = log.query(
        "select * from tags where exchange_id = ? and tagger = ? order by id desc limit 1",
        [exchange_id, tagger],
    )
    return rows[0] if rows else None


def latest_vote(log: SessionLog, exchange_id: int, tagger: str) -> Row | None:
    """The newest vote of *tagger* for the exchange: it won, or it was in a tie or "both bad"
    (a vote that another answer won belongs to that answer)."""
    rows = log.query(
        "select v.* from votes v where v.tagger = ? and (v.winner_exchange_id = ? or "
        "(v.winner_exchange_id is null and exists "
        "(select 1 from json_each(v.exchange_ids) j where j.value = ?))) order by v.id desc limit 1",
        [tagger, exchange_id, exchange_id],
    )
    return rows[0] if rows else None


def delete_row(log: SessionLog, table: Literal["tags", "votes"], row_id: int) -> None:
    """Remove one tag or vote (undo)."""
    with log.transaction() as db:
        db.table(table).delete(row_id)


def add_vote(log: SessionLog, row: Row) -> int:
    return log.insert("votes", row)


def votes(log: SessionLog, session_id: str | None = None) -> list[Row]:
    sql = "select * from votes" + (" where session_id = ?" if session_id else "") + " order by id"
    return log.query(sql, [session_id] if session_id else [])


# -- probe runs ---------------------------------------------------------------------------------


def add_probe_run(log: SessionLog, row: Row) -> int:
    return log.insert("probe_runs", row)


def probe_run(log: SessionLog, run_id: int | None) -> Row | None:
    """A probe run by id, or the latest with None."""
    sql = "select * from probe_runs " + (
        "where id = ?" if run_id is not None else "order by id desc limit 1"
    )
    rows = log.query(sql, [run_id] if run_id is not None else [])
    return rows[0] if rows else None


def update_probe_run(log: SessionLog, run_id: int, fields: Row) -> None:
    with log.transaction() as db:
        db.table("probe_runs").update(run_id, fields)


def probe_item_keys(log: SessionLog, run_id: int) -> set[tuple[str, str, int]]:
    """(probe id, lane, sample) of every answer the run has."""
    rows = log.query("select probe_id, lane, sample from probe_items where run_id = ?", [run_id])
    return {(r["probe_id"], r["lane"], r["sample"]) for r in rows}


def add_probe_items(log: SessionLog, rows: list[Row]) -> None:
    """Add a run's answers (an answer the run already has is kept)."""
    with log.transaction() as db:
        db.table("probe_items").insert_all(rows, ignore=True)


def probe_items(log: SessionLog, run_id: int) -> list[Row]:
    """The run's answers, each with the latest human tag of its exchange (or None)."""
    return log.query(
        """select i.*, (select t.label from tags t where t.exchange_id = i.exchange_id
                        order by t.id desc limit 1) as human
           from probe_items i where i.run_id = ? order by i.id""",
        [run_id],
    )


BROWSE_QUERIES = {
    "hallucination_rate_by_model_and_mode": {
        "title": "Hallucination rate by model and mode (tagged answers)",
        # One row an answer, by its current (latest) tag: a retag or a second tagger's tag does not
        # count the answer twice.
        "sql": "select e.model_id, e.mode, count(*) as tagged, round(avg(t.label = 'hallucination'), 3) as hallucination_rate from exchanges e join tags t on t.id = (select max(id) from tags where exchange_id = e.id) group by 1, 2 order by 4 desc",
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
"""Canned queries for Datasette (`playground browse`)."""
