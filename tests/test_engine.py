"""The engine against llama-cpp-python itself, on the real default models."""

import threading

import numpy as np
import pytest

from playground.core.engine import Model, Outcome, Sampling
from playground.core.prompts import Conversation, ModeSpec

Q = "Who is Zyler Vance?"
CASES = [("base", "raw"), ("base", "few-shot"), ("tuned", "chat"), ("tuned", "few-shot")]


def _model(request, which) -> Model:
    return request.getfixturevalue(f"{which}_model")


def _llama_greedy(model: Model, prompt: list[int], n: int) -> list[int]:
    out = []
    for t in model.llm.generate(
        prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0
    ):
        if model.is_eog(t) or len(out) >= n:
            break
        out.append(t)
    return out


@pytest.mark.parametrize("which,mode", CASES)
def test_greedy_equals_llama_cpp_greedy(request, which, mode):
    model = _model(request, which)
    r = Conversation(ModeSpec(mode), model).render(Q, 48)
    out = Outcome()
    tokens = list(model.generate(r.token_ids, Sampling(max_tokens=48), out))
    assert len(out.token_ids) > 3
    assert [t.token_id for t in tokens] == out.token_ids
    assert _llama_greedy(model, r.token_ids, len(out.token_ids)) == out.token_ids


@pytest.mark.parametrize("which", ["base", "tuned"])
def test_logprobs_match_log_softmax_of_logits(request, which):
    import llama_cpp

    model = _model(request, which)
    r = Conversation(ModeSpec("raw"), model).render("The tallest mountain on Earth is", 24)
    out = Outcome()
    tokens = [
        t for t in model.generate(r.token_ids, Sampling(max_tokens=24), out) if t.token_id >= 0
    ]
    # An independent llama.cpp context that keeps every row of logits (logits_all=True), fed the
    # same way as a generation: the prompt as one batch, then one token at a time.
    ref = llama_cpp.Llama(str(model.path), n_ctx=256, logits_all=True, verbose=False, n_threads=2)
    try:
        seq = r.token_ids + out.token_ids
        ref.eval(r.token_ids)
        for t in out.token_ids:
            ref.eval([t])
        scores = np.asarray(ref.scores[: len(seq)], dtype=np.float64)
    finally:
        ref.close()
    n_prompt = len(r.token_ids)
    for tok in tokens:
        row = scores[n_prompt - 1 + tok.index]
        lsm = row - (row.max() + np.log(np.exp(row - row.max()).sum()))
        assert tok.logprob == pytest.approx(lsm[tok.token_id], abs=1e-3)
        best = np.argsort(-lsm)[: len(tok.top)]
        assert [a.token_id for a in tok.top] == list(best)
        for a in tok.top:
            assert a.logprob == pytest.approx(lsm[a.token_id], abs=1e-3)


def test_second_turn_reuses_the_cache(tuned_model):
    conv = Conversation(ModeSpec("chat"), tuned_model)
    r1 = conv.render(Q, 32)
    o1 = Outcome()
    list(tuned_model.generate(r1.token_ids, Sampling(max_tokens=32), o1))
    conv.commit(Q, o1.answer_ids, r1.dropped_turns)
    r2 = conv.render("Where was he born?", 32)
    new = len(r2.token_ids) - len(r1.token_ids) - len(o1.answer_ids)
    o2 = Outcome()
    list(tuned_model.generate(r2.token_ids, Sampling(max_tokens=8), o2))
    assert o2.reused >= len(r1.token_ids) + len(o1.answer_ids) - 1
    assert o2.evaluated <= new + 1


def test_cancel_stops_within_one_token(tuned_model):
    cancel = threading.Event()
    out = Outcome()
    r = Conversation(ModeSpec("raw"), tuned_model).render("Once upon a time", 200)
    seen = 0
    for _ in tuned_model.generate(r.token_ids, Sampling(max_tokens=200), out, cancel):
        seen += 1
        if seen == 5:
            cancel.set()
    assert out.finish_reason == "cancelled"
    assert seen == 5 and len(out.token_ids) == 5


def test_seeded_sampling_is_reproducible(tuned_model):
    r = Conversation(ModeSpec("chat"), tuned_model).render(Q, 24)
    runs = []
    for seed in (7, 7, 8):
        out = Outcome()
        list(
            tuned_model.generate(
                r.token_ids, Sampling(temperature=1.0, top_p=0.95, seed=seed, max_tokens=24), out
            )
        )
        runs.append(out.token_ids)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_stop_sequence_is_not_shown(base_model):
    r = Conversation(ModeSpec("few-shot"), base_model).render("What is the capital of Japan?", 48)
    out = Outcome()
    shown = "".join(
        t.text for t in base_model.generate(r.token_ids, Sampling(max_tokens=48, stop=r.stops), out)
    )
    assert out.finish_reason == "stop"
    assert "User" not in shown and shown == out.text
    assert "Tokyo" in out.text


def test_max_tokens_and_stats(tuned_model):
    r = Conversation(ModeSpec("raw"), tuned_model).render("Once upon a time", 10)
    out = Outcome()
    list(tuned_model.generate(r.token_ids, Sampling(max_tokens=10), out))
    assert out.finish_reason == "length"
    s = out.stats
    assert s.completion_tokens == 10 and s.prompt_tokens == len(r.token_ids)
    assert s.tokens_per_second > 0 and s.time_to_first_token > 0
    assert 0 < s.confidence <= 1
