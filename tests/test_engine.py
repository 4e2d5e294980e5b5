"""The engine against llama-cpp-python itself, on the real default models."""

import threading

import numpy as np
import pytest

from playground.core.engine import ALIGN, Model, Outcome, Sampling
from playground.core.prompts import Conversation, ModeSpec

pytestmark = pytest.mark.slow  # every test here loads the default models

Q = "Who is Zyler Vance?"
CASES = [("base", "raw"), ("base", "few-shot"), ("tuned", "chat"), ("tuned", "few-shot")]


def _model(request, which) -> Model:
    return request.getfixturevalue(f"{which}_model")


def _llama_greedy(model: Model, prompt: list[int], n: int) -> list[int]:
    """llama-cpp-python's own greedy decoding on the same context, fed as the engine feeds a
    fresh=True prompt: from an empty cache, in ALIGN-token batches (Llama.eval splits by n_batch),
    then one token at a time. (With the prompt left in the cache, `Llama.generate` re-evaluates
    only its last token, alone: another batch shape, logits ~1e-3 away, and near-ties flip on
    some CPUs.)"""
    out = []
    model.clear_cache()
    llm = model.llm
    with model.lock:
        n_batch, llm.n_batch = llm.n_batch, ALIGN
        try:
            for t in llm.generate(
                prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0
            ):
                if model.is_eog(t) or len(out) >= n:
                    break
                out.append(t)
        finally:
            llm.n_batch = n_batch
    return out


@pytest.mark.parametrize("which,mode", CASES)
def test_greedy_equals_llama_cpp_greedy(request, which, mode):
    model = _model(request, which)
    r = Conversation(ModeSpec(mode), model).render(Q, 48)
    out = Outcome()
    model.clear_cache()
    tokens = list(model.generate(r.token_ids, Sampling(max_tokens=48), out, fresh=True))
    assert out.evaluated == len(r.token_ids) and out.reused == 0
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
        t
        for t in model.generate(r.token_ids, Sampling(max_tokens=24), out, fresh=True)
        if t.token_id >= 0
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
        # The reference computes every row of logits, the engine only the last: two batch shapes
        # of the output layer, ~1e-4 apart, so near-tied alternatives may swap places. Each
        # alternative must be among the best within that tolerance, best first.
        kth = np.sort(lsm)[-len(tok.top)]
        for a in tok.top:
            assert a.logprob == pytest.approx(lsm[a.token_id], abs=1e-3)
            assert lsm[a.token_id] >= kth - 1e-3
        assert [a.logprob for a in tok.top] == sorted((a.logprob for a in tok.top), reverse=True)


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


def test_fresh_generation_does_not_depend_on_what_ran_before(base_model):
    """fresh=True gives the tokens and probabilities of an empty cache, bit for bit, whatever ran
    before, while still reusing the few-shot scaffold that another question left in the cache
    (probe runs depend on both)."""
    r = Conversation(ModeSpec("few-shot"), base_model).render("What is the capital of Peru?", 24)
    other = Conversation(ModeSpec("few-shot"), base_model).render("Who wrote Hamlet?", 24)

    def run():
        out = Outcome()
        toks = list(base_model.generate(r.token_ids, Sampling(max_tokens=24), out, fresh=True))
        return out, (out.token_ids, [t.logprob for t in toks], [[a.top] for a in toks])

    base_model.clear_cache()
    _, empty = run()
    # The other question, fresh: its aligned chunks of the scaffold are reused by the next run.
    list(base_model.generate(other.token_ids, Sampling(max_tokens=8), Outcome(), fresh=True))
    out, after_fresh = run()
    assert out.reused > 0 and out.reused % ALIGN == 0
    assert after_fresh == empty
    # The other question with ordinary reuse (another batch shape): nothing unaligned is reused.
    list(base_model.generate(other.token_ids, Sampling(max_tokens=8), Outcome()))
    list(base_model.generate(r.token_ids, Sampling(max_tokens=4), Outcome()))
    _, after_reuse = run()
    assert after_reuse == empty


def test_scores_do_not_depend_on_what_ran_before(tuned_model):
    """P(True) and sequence log-probabilities are figures in reports: scoring the same input must
    give the same number whatever the model did before (prefix reuse changes batch shapes)."""
    from playground.core.lab.runner import p_true

    ids = tuned_model.tokenize("The capital of France is Paris.", special=False)

    def scores():
        return (
            p_true(tuned_model, "What is the capital of France?", "Paris"),
            p_true(tuned_model, "What is the capital of France?", "Lyon"),
            tuned_model.sequence_logprobs(ids),
            tuned_model.next_token_logprobs(ids, [ids[0], ids[1]]),
        )

    first = scores()
    # Other work in between: a generation that leaves a prefix of the P(True) prompt's kind in
    # the cache, and a different score.
    r = Conversation(ModeSpec("raw"), tuned_model).render("Question: What is the capital", 8)
    list(tuned_model.generate(r.token_ids, Sampling(max_tokens=8), Outcome()))
    p_true(tuned_model, "What is the capital of Spain?", "Madrid")
    assert scores() == first
    assert scores() == first
