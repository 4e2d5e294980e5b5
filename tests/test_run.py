"""The generation loop without a model: LaneRun over a scripted backend (tests/fakes.py).

Stop sequences, the token limit, cancel, the search loop (tool searches, the limit, invented
results, an unterminated query, search-first) and every error path, through Playground.ask, with
the exchange logged to a real database."""

from __future__ import annotations

import json
import re

import pytest

from playground.core.db import SessionLog
from playground.core.engine import EngineError, Sampling
from playground.core.events import Finished, PromptReady, SearchDone, SearchStarted, Started, Token
from playground.core.lanespec import parse_lane
from playground.core.prompts import PromptError
from playground.core.search.backends import Result
from playground.core.search.tool import LIMIT_BLOCK, MAX_SEARCHES

from .fakes import FakeBackend, FakePlayground

QUERY = ["Let me check. ", "<SEARCH_", "START>Zyler", " Vance<SEARCH_END>", " dropped"]


@pytest.fixture
def log(db_path):
    log = SessionLog(db_path)
    yield log
    log.close()


def make(catalog, log, *fakes, lanes=("base:raw",), results=None):
    pg = FakePlayground(catalog, [parse_lane(s) for s in lanes], log=log, fakes=list(fakes))
    queries: list[str] = []

    def run_search(query):
        queries.append(query)
        found = results if results is not None else [Result("Zyler Vance", "test", "fictional")]
        return found, None, 0.01, "fake"

    pg.run_search = run_search
    pg.queries = queries
    return pg


def ask(pg, question="Who is Zyler Vance?", **sampling):
    events = []
    [result] = pg.ask(question, Sampling(**sampling), emit=events.append)
    return result, events


def tokens(log, ex_id):
    return [(t["token_id"], t["text"]) for t in log.tokens(ex_id)]


def test_an_answer_streams_and_is_logged(catalog, log):
    fake = FakeBackend(["Paris", " is", " the", " capital."])
    pg = make(catalog, log, fake)
    r, events = ask(pg)
    assert (r.status, r.finish_reason, r.text) == ("complete", "eos", "Paris is the capital.")
    kinds = [type(e) for e in events]
    assert kinds[0] is Started and kinds[1] is PromptReady and kinds[-1] is Finished
    assert [e.index for e in events if isinstance(e, Token)] == [0, 1, 2, 3]
    row = log.exchange(r.exchange_id)
    assert row["output_text"] == "Paris is the capital."
    assert (row["status"], row["finish_reason"], row["completion_tokens"]) == ("complete", "eos", 4)
    assert row["prompt_evaluated"] == len(fake.prompt.token_ids)
    assert row["mean_logprob"] == pytest.approx(-0.25)
    assert [t for _, t in tokens(log, r.exchange_id)] == ["Paris", " is", " the", " capital."]
    assert fake.turns == [("Who is Zyler Vance?", "Paris is the capital.")]
    assert pg.lanes[0].turns == 1 and pg.lanes[0].last_exchange_id == r.exchange_id


def test_a_stop_sequence_ends_the_answer_and_is_never_shown(catalog, log):
    fake = FakeBackend(["Paris", "\nQ", ":", " next question"], stops=["\nQ:"])
    r, events = ask(make(catalog, log, fake))
    assert (r.finish_reason, r.text) == ("stop", "Paris")
    assert "".join(e.text for e in events if isinstance(e, Token)) == "Paris"
    assert json.loads(log.exchange(r.exchange_id)["stop"]) == ["\nQ:"]


def test_text_held_back_for_a_stop_that_never_comes_is_released(catalog, log):
    fake = FakeBackend(["Paris", "\nQ"], stops=["\nQ:"])
    r, events = ask(make(catalog, log, fake))
    assert (r.finish_reason, r.text) == ("eos", "Paris\nQ")
    released = [e for e in events if isinstance(e, Token) and e.token_id == -1]
    assert [e.text for e in released] == ["\nQ"]
    assert log.exchange(r.exchange_id)["output_text"] == "Paris\nQ"


def test_user_stops_join_the_mode_stops(catalog, log):
    fake = FakeBackend(["Yes", ".", "END", "more"], stops=["\nQ:"])
    r, events = ask(make(catalog, log, fake), stop=["END"])
    assert (r.finish_reason, r.text) == ("stop", "Yes.")
    assert events[0].sampling["stop"] == ["\nQ:", "END"]


def test_the_token_limit_ends_the_answer(catalog, log):
    r, _ = ask(make(catalog, log, FakeBackend(["a", "b", "c", "d", "e"])), max_tokens=3)
    assert (r.status, r.finish_reason, r.text, r.stats.completion_tokens) == (
        "complete",
        "length",
        "abc",
        3,
    )


def test_cancel_keeps_the_partial_answer(catalog, log):
    fake = FakeBackend(["one", " two", " three", " four"])
    pg = make(catalog, log, fake)
    events = []

    def emit(ev):
        events.append(ev)
        if isinstance(ev, Token) and ev.index == 1:
            pg.cancel()

    [r] = pg.ask("count", Sampling(), emit=emit)
    assert (r.status, r.finish_reason, r.text) == ("cancelled", "cancelled", "one two")
    row = log.exchange(r.exchange_id)
    assert (row["status"], row["output_text"]) == ("cancelled", "one two")
    assert events[-1] == Finished(
        pg.lanes[0].name, r.exchange_id, "cancelled", "cancelled", "one two", r.stats, None
    )


def test_an_engine_error_mid_stream_keeps_the_partial_answer(catalog, log):
    fake = FakeBackend(["half", " an", EngineError("the server stopped in the middle")])
    pg = make(catalog, log, fake)
    r, events = ask(pg)
    assert (r.status, r.finish_reason, r.text) == ("error", "error", "half an")
    assert r.error == "the server stopped in the middle"
    row = log.exchange(r.exchange_id)
    assert (row["status"], row["output_text"], row["error"]) == (
        "error",
        "half an",
        "the server stopped in the middle",
    )
    assert fake.turns == [] and pg.lanes[0].turns == 0  # a failed turn is not part of the chat


def test_an_unexpected_exception_fails_only_its_lane(catalog, log):
    bad = FakeBackend(["x", RuntimeError("boom")])
    good = FakeBackend(["fine"])
    pg = make(catalog, log, bad, good, lanes=("base:raw", "tuned:chat"))
    events = []
    r1, r2 = pg.ask("q", Sampling(), emit=events.append)
    assert (r1.status, r1.error) == ("error", "RuntimeError: boom")
    assert (r2.status, r2.text) == ("complete", "fine")
    finished = [e for e in events if isinstance(e, Finished) and e.lane == pg.lanes[0].name]
    assert finished[-1].error == "RuntimeError: boom"
    # The exchange row ends as an error with the message and the partial text, never "pending"
    # (which the next start would relabel "interrupted", with no error text).
    row = log.exchange(r1.exchange_id)
    assert (row["status"], row["error"], row["output_text"]) == ("error", "RuntimeError: boom", "x")


def test_a_prompt_that_does_not_fit_is_an_error_exchange(catalog, log):
    fake = FakeBackend(["never"])

    def too_long(question, sampling):
        raise PromptError("the question is too long")

    fake.prepare = too_long
    r, events = ask(make(catalog, log, fake))
    assert (r.status, r.error) == ("error", "the question is too long")
    assert [type(e) for e in events] == [Started, Finished]
    row = log.exchange(r.exchange_id)
    assert (row["status"], row["finish_reason"], row["error"]) == (
        "error",
        "error",
        "the question is too long",
    )


def test_an_unknown_model_is_an_error_exchange(catalog, log):
    pg = make(catalog, log, FakeBackend(["never"]), lanes=("no-such-model:raw",))
    r, events = ask(pg)
    assert r.status == "error" and "no-such-model" in r.error
    assert log.exchange(r.exchange_id)["model_id"] == "no-such-model"


def test_a_closed_query_is_answered_and_generation_continues(catalog, log):
    fake = FakeBackend(QUERY, ["He is", " not real."])
    pg = make(catalog, log, fake, lanes=("base:raw+search",))
    r, events = ask(pg)
    assert pg.queries == ["Zyler Vance"]
    assert (r.status, r.finish_reason, r.text) == (
        "complete",
        "eos",
        "Let me check. He is not real.",
    )
    started = next(e for e in events if isinstance(e, SearchStarted))
    done = next(e for e in events if isinstance(e, SearchDone))
    assert (started.query, started.kind, started.position) == ("Zyler Vance", "tool", 14)
    assert (done.kind, done.backend, done.position, done.token_index) == ("tool", "fake", 14, 4)
    assert done.search_id is not None and done.results[0]["title"] == "Zyler Vance"
    # the model's text up to the closing marker, then the block, then the rest of the answer
    assert (
        fake.contexts[1] == "Let me check. <SEARCH_START>Zyler Vance<SEARCH_END>" + fake.injected[0]
    )
    assert "fictional" in fake.injected[0]
    [row] = log.searches(r.exchange_id)
    assert (row["kind"], row["query"], row["injected_tokens"]) == (
        "tool",
        "Zyler Vance",
        done.injected_tokens,
    )
    assert row["resume_evaluated"] is not None  # what the continuation cost is measured
    ex = log.exchange(r.exchange_id)
    assert (ex["searches"], ex["output_text"]) == (1, r.text)


def test_searches_beyond_the_limit_get_the_limit_block(catalog, log):
    q = ["<SEARCH_START>again<SEARCH_END>"]
    fake = FakeBackend(*[q] * (MAX_SEARCHES + 1), ["done"])
    pg = make(catalog, log, fake, lanes=("base:raw+search",))
    r, events = ask(pg)
    kinds = [e.kind for e in events if isinstance(e, SearchDone)]
    assert kinds == ["tool"] * MAX_SEARCHES + ["limit"]
    assert len(pg.queries) == MAX_SEARCHES and fake.injected[-1] == LIMIT_BLOCK
    assert (r.text, log.exchange(r.exchange_id)["searches"]) == ("done", MAX_SEARCHES + 1)


def test_a_query_at_the_token_limit_is_answered_then_the_answer_ends(catalog, log):
    fake = FakeBackend(["<SEARCH_START>x<SEARCH_END>"], ["never"])
    r, events = ask(make(catalog, log, fake, lanes=("base:raw+search",)), max_tokens=1)
    assert r.finish_reason == "length"
    assert [e.kind for e in events if isinstance(e, SearchDone)] == ["tool"]


def test_cancel_during_a_search_ends_the_answer(catalog, log):
    fake = FakeBackend(["<SEARCH_START>x<SEARCH_END>"], ["never"])
    pg = make(catalog, log, fake, lanes=("base:raw+search",))

    def run_search(query):
        pg.cancel()
        return [], None, 0.0, "fake"

    pg.run_search = run_search
    r, _ = ask(pg)
    assert (r.status, r.finish_reason) == ("cancelled", "cancelled")


def test_invented_results_stop_the_answer(catalog, log):
    fake = FakeBackend(["Sure. ", "<SEARCH_RESULTS>", "made up"])
    r, events = ask(make(catalog, log, fake, lanes=("base:raw+search",)))
    assert (r.finish_reason, r.text) == ("invented_results", "Sure. ")
    [done] = [e for e in events if isinstance(e, SearchDone)]
    assert (done.kind, done.backend, done.position) == ("invented", "model", 6)
    assert fake.turns == [("Who is Zyler Vance?", "Sure. ")]


def test_an_unterminated_query_is_reported(catalog, log):
    fake = FakeBackend(["Hm ", "<SEARCH_START>", "who is"])
    pg = make(catalog, log, fake, lanes=("base:raw+search",))
    r, events = ask(pg)
    [done] = [e for e in events if isinstance(e, SearchDone)]
    assert (done.kind, done.query, done.backend) == ("unterminated", "who is", pg.search_backend)
    assert pg.queries == [] and r.text == "Hm "
    assert log.searches(r.exchange_id)[0]["kind"] == "unterminated"


def test_a_partial_marker_turns_out_to_be_text(catalog, log):
    fake = FakeBackend(["a ", "<SEARCH", " b"])
    r, events = ask(make(catalog, log, fake, lanes=("base:raw+search",)))
    assert r.text == "a <SEARCH b"
    assert not [e for e in events if isinstance(e, SearchDone)]


def test_search_first_puts_the_results_before_the_question(catalog, log):
    fake = FakeBackend(["He is fictional."])
    pg = make(catalog, log, fake, lanes=("base:raw+search-first",))
    r, events = ask(pg)
    assert isinstance(events[0], SearchStarted) and events[0].kind == "first"
    assert pg.queries == ["Who is Zyler Vance?"]
    assert fake.question.startswith("<SEARCH_RESULTS>")
    assert fake.question.endswith("\n\nWho is Zyler Vance?")
    [done] = [e for e in events if isinstance(e, SearchDone)]
    assert done.kind == "first" and done.search_id is not None
    assert log.exchange(r.exchange_id)["searches"] == 1


def test_a_prefill_starts_the_answer(catalog, log):
    fake = FakeBackend([" Vance", "<SEARCH_END>"], ["Found."])
    pg = make(catalog, log, fake, lanes=("base:raw+search",))
    [r] = pg.ask("Who?", Sampling(), prefill="Zyler: <SEARCH_START>Zyler")
    assert pg.queries == ["Zyler Vance"]
    assert r.text == "Zyler: Found."
    assert json.loads(log.exchange(r.exchange_id)["options"])["prefill"].startswith("Zyler")


def test_without_a_log_nothing_is_written(catalog):
    fake = FakeBackend(["ok"])
    pg = make(catalog, None, fake)
    r, events = ask(pg)
    assert (r.status, r.exchange_id, r.text) == ("complete", None, "ok")
    assert all(getattr(e, "exchange_id", None) is None for e in events)


def test_turns_continue_the_conversation(catalog, log):
    fake = FakeBackend(["one"], ["two"])
    pg = make(catalog, log, fake)
    ask(pg, "first")
    ask(pg, "second")
    assert fake.turns == [("first", "one"), ("second", "two")]
    assert pg.lanes[0].turns == 2


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"temperature": float("nan")}, "temperature must be a number >= 0, not nan"),
        ({"temperature": float("inf")}, "temperature must be a number >= 0, not inf"),
        ({"top_p": float("nan")}, "top-p must be in (0, 1], not nan"),
        ({"seed": -1}, "from 0 to 2^63-1, not -1"),
        ({"seed": 2**63}, "from 0 to 2^63-1, not 9223372036854775808"),
    ],
)
def test_sampling_settings_that_cannot_work_are_refused(settings, message):
    """NaN temperature, a negative seed and one SQLite cannot store used to fail inside the lane
    (a traceback, a row left pending, or no row at all)."""
    with pytest.raises(EngineError, match=re.escape(message)):
        Sampling(**settings)
    assert Sampling(seed=2**63 - 1).seed == 2**63 - 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--temperature", "nan"], "temperature must be a number >= 0, not nan"),
        (["--seed", "-1"], "from 0 to 2^63-1, not -1"),
        (["--seed", str(2**63)], "from 0 to 2^63-1"),
    ],
)
def test_ask_refuses_them_in_one_line(tmp_path, args, message):
    from click.testing import CliRunner

    from playground.cli import cli

    r = CliRunner().invoke(cli, ["ask", "--db", str(tmp_path / "a.db"), *args, "hi"])
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output
