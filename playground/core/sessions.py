"""Coming back to the log: find sessions, tag, vote, measure agreement, export."""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations
from typing import Any, Literal, TypedDict

from playground.core.db import (
    LABELS,
    ExchangeRow,
    Row,
    SessionLog,
    default_tagger,
    now_iso,
    queries,
)
from playground.core.errors import PlaygroundError
from playground.core.textsafe import visible
from playground.core.urls import redact_urls

VERDICTS = ("better", "tie", "both_bad")
HONEST_REFUSAL = (
    "I don't know. I have no reliable information about that, so I would rather not guess."
)


class SessionError(PlaygroundError):
    pass


class Agreement(TypedDict):
    """Two taggers' agreement: on how many exchanges both tagged, raw agreement, Cohen's kappa."""

    taggers: tuple[str, str]
    both_tagged: int
    agreement: float | None
    kappa: float | None


class TagRecord(TypedDict):
    label: str
    note: str | None
    tagger: str
    created_at: str


class Message(TypedDict):
    role: Literal["user", "assistant"]
    content: str


class SftRecord(TypedDict):
    messages: list[Message]


class PreferencePair(TypedDict):
    prompt: str
    chosen: str
    rejected: str
    chosen_model: str
    rejected_model: str
    blind: bool


def find_sessions(
    log: SessionLog,
    model: str | None = None,
    mode: str | None = None,
    tag: str | None = None,
    text: str | None = None,
    limit: int = 100,
) -> list[Row]:
    """Sessions with their lanes, turns and tag counts, filtered by model, mode, tag or full text."""
    if tag and tag not in LABELS:
        raise SessionError(f"unknown tag {tag!r}: use one of {', '.join(LABELS)}")
    return queries.find_sessions(log, model, mode, tag, text, limit)


def session(log: SessionLog, session_id: str) -> Row:
    rows = queries.sessions_starting(log, session_id)
    if not rows:
        raise SessionError(f"no session {session_id!r} in {log.path} (see `playground sessions`)")
    if len(rows) > 1:
        raise SessionError(f"{session_id!r} matches {len(rows)} sessions: give more of the id")
    return rows[0]


def exchanges(
    log: SessionLog, session_id: str | None = None, latest_only: bool = False
) -> list[ExchangeRow]:
    """A session's exchanges (all sessions' with None), in turn and lane order."""
    rows = queries.exchanges(log, session_id)
    if latest_only:  # a regenerated answer replaces its parent in transcripts
        replaced = {r["parent_id"] for r in rows if r["parent_id"]}
        rows = [r for r in rows if r["id"] not in replaced]
    return rows


def add_vote(
    log: SessionLog,
    session_id: str,
    turn: int,
    exchange_ids: list[int],
    verdict: str,
    winner: int | None = None,
    blind: bool = False,
    tagger: str | None = None,
) -> int:
    if verdict not in VERDICTS:
        raise SessionError(f"unknown verdict {verdict!r}: use one of {', '.join(VERDICTS)}")
    if verdict == "better" and winner not in exchange_ids:
        raise SessionError("a 'better' vote names the winning exchange among those compared")
    return queries.add_vote(
        log,
        {
            "session_id": session_id,
            "turn": turn,
            "winner_exchange_id": winner if verdict == "better" else None,
            "exchange_ids": json.dumps(exchange_ids),
            "verdict": verdict,
            "blind": int(blind),
            "tagger": tagger or default_tagger(),
            "created_at": now_iso(),
        },
    )


def undo_last(log: SessionLog, exchange_id: int, tagger: str | None = None) -> str | None:
    """Take back the newest tag or vote (whichever came last) that *tagger* gave this answer;
    what was undone, in words, or None when there was nothing to undo."""
    who = tagger or default_tagger()
    tag = queries.latest_tag(log, exchange_id, who)
    vote = queries.latest_vote(log, exchange_id, who)
    if tag is None and vote is None:
        return None
    if vote is None or (tag is not None and tag["created_at"] > vote["created_at"]):
        assert tag is not None
        queries.delete_row(log, "tags", tag["id"])
        return f"tag {tag['label']}"
    queries.delete_row(log, "votes", vote["id"])
    return f"vote ({vote['verdict'].replace('_', ' ')})"


def current_tag(log: SessionLog, exchange_id: int) -> str | None:
    """The label that counts for an answer: its newest tag (exports and the lab read the same)."""
    tags = log.tags(exchange_id)
    return str(tags[-1]["label"]) if tags else None


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Agreement of two raters beyond chance: (p_o - p_e) / (1 - p_e)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in set(a) | set(b)) / (n * n)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def agreement(log: SessionLog, session_id: str | None = None) -> list[Agreement]:
    """For each pair of taggers: how many exchanges both tagged, raw agreement, Cohen's kappa."""
    latest: dict[tuple[int, str], str] = {}
    for r in queries.tags_in_order(log, session_id):
        latest[(r["exchange_id"], r["tagger"])] = r["label"]
    by_tagger: dict[str, dict[int, str]] = {}
    for (ex, tagger), label in latest.items():
        by_tagger.setdefault(tagger, {})[ex] = label
    out: list[Agreement] = []
    for t1, t2 in combinations(sorted(by_tagger), 2):
        both = sorted(set(by_tagger[t1]) & set(by_tagger[t2]))
        a = [by_tagger[t1][e] for e in both]
        b = [by_tagger[t2][e] for e in both]
        out.append(
            {
                "taggers": (t1, t2),
                "both_tagged": len(both),
                "agreement": sum(x == y for x, y in zip(a, b, strict=True)) / len(both)
                if both
                else None,
                "kappa": cohen_kappa(a, b),
            }
        )
    return out


# -- export -----------------------------------------------------------------------------------


def _tags(log: SessionLog, exchange_id: int) -> list[TagRecord]:
    return [
        TagRecord(label=t["label"], note=t["note"], tagger=t["tagger"], created_at=t["created_at"])
        for t in log.tags(exchange_id)
    ]


def export_jsonl(log: SessionLog, rows: list[ExchangeRow]) -> list[dict[str, Any]]:
    """One JSON record an exchange: its row with the JSON columns decoded, tokens, tags, searches."""
    out = []
    for r in rows:
        rec: dict[str, Any] = {
            k: v
            for k, v in r.items()
            if k not in ("prompt_token_ids", "prompt_special", "pid", "proc_started", "host")
        }
        for key in ("model_path", "model_info", "error"):  # a log written before urls were
            if rec.get(key):  # redacted may hold a server's credentials
                rec[key] = redact_urls(rec[key])
        for key in ("stop", "model_info", "options"):
            if rec.get(key):
                rec[key] = json.loads(rec[key])
        rec["prompt_token_ids"] = json.loads(r.get("prompt_token_ids") or "[]")
        rec["tokens"] = [
            {
                "token_id": t["token_id"],
                "text": t["text"],
                "logprob": t["logprob"],
                "top": json.loads(t["top"] or "[]"),
            }
            for t in log.tokens(r["id"])
        ]
        rec["tags"] = _tags(log, r["id"])
        rec["searches"] = [
            {k: s[k] for k in ("kind", "query", "backend", "error")}
            | {"copied": bool(s["copied"]), "results": json.loads(s["results"] or "[]")}
            for s in log.searches(r["id"])
        ]
        out.append(rec)
    return out


def export_markdown(log: SessionLog, sess: Row, rows: list[ExchangeRow]) -> str:
    lanes = json.loads(sess["lanes"] or "[]")
    out = [
        f"# Session {sess['id']}",
        "",
        f"{sess['created_at'][:19].replace('T', ' ')} UTC · lanes: "
        + ", ".join(f"`{lane}`" for lane in lanes),
        "",
    ]
    turn: int | None = None
    for r in rows:
        if r["turn"] != turn:
            turn = r["turn"]
            out += [
                f"## Turn {turn + 1}",
                "",
                "> " + (r["question"] or "").replace("\n", "\n> "),
                "",
            ]
        tag = current_tag(log, r["id"])
        confidence = r.get("confidence")
        conf = f"{confidence:.0%}" if confidence is not None else "–"  # no log-probs: a server's
        head = (
            f"**{r['lane']}** ({r['model_id']}, {r['status']} · confidence {conf}"
            + (f", tagged: {tag}" if tag else "")
            + ")"
        )
        text = (r["output_text"] or "").strip() or "_(no answer)_"
        if r["error"]:
            text += f"\n\n_error: {redact_urls(r['error'])}_"
        out += [head, "", "```text", text.replace("```", "`\u200b``"), "```", ""]
    # A transcript is read on a screen: terminal control sequences in it are shown, not obeyed.
    return visible("\n".join(out))


def export_sft(log: SessionLog, rows: list[ExchangeRow]) -> list[SftRecord]:
    """Chat-format SFT data: answers tagged as hallucinations become an honest "I don't know".

    Identical records (two lanes' hallucinations on one question) are written once."""
    out: list[SftRecord] = []
    seen: set[tuple[str, str]] = set()
    for r in rows:
        output = r["output_text"]
        if r["status"] != "complete" or not (output or "").strip():
            continue
        labels = [t["label"] for t in log.tags(r["id"])]
        if labels and labels[-1] == "hallucination":
            answer = HONEST_REFUSAL
        elif labels and labels[-1] in ("correct", "abstained"):
            answer = (output or "").strip()
        else:
            continue  # untagged or partially right: not a clean training example
        if (r["question"], answer) in seen:
            continue
        seen.add((r["question"], answer))
        out.append(
            {
                "messages": [
                    {"role": "user", "content": r["question"]},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return out


def export_preferences(log: SessionLog, session_id: str | None = None) -> list[PreferencePair]:
    """Votes as DPO preference pairs: the chosen answer against each answer it beat.

    A tagger's last vote on a turn is the one that counts: voting lane 2 better, then lane 1,
    gives lane 1's pairs only (and a tie or "both bad" after a "better" gives none)."""
    out: list[PreferencePair] = []
    last: dict[tuple[str, int, str], Row] = {}
    for v in queries.votes(log, session_id):  # oldest first: a later vote replaces an earlier
        last[(v["session_id"], v["turn"], v["tagger"])] = v
    for v in sorted(last.values(), key=lambda x: x["id"]):
        if v["verdict"] != "better":
            continue
        winner = log.exchange(v["winner_exchange_id"])
        for other in json.loads(v["exchange_ids"]):
            if other == v["winner_exchange_id"]:
                continue
            loser = log.exchange(other)
            out.append(
                {
                    "prompt": winner["question"],
                    "chosen": (winner["output_text"] or "").strip(),
                    "rejected": (loser["output_text"] or "").strip(),
                    "chosen_model": winner["model_id"],
                    "rejected_model": loser["model_id"],
                    "blind": bool(v["blind"]),
                }
            )
    return out
