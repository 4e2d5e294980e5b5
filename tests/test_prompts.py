import pytest

from playground.core.prompts import Conversation, ModeSpec, PromptError, abstain_rule, penalty


@pytest.mark.parametrize("t,p", [(0.5, 1.0), (0.75, 3.0), (0.9, 9.0)])
def test_penalty(t, p):
    assert penalty(t) == pytest.approx(p)


def test_rule_states_the_penalty():
    rule = abstain_rule(0.75)
    assert "75% confident" in rule and "costs 3 points" in rule and "I don't know" in rule


@pytest.mark.slow
def test_chat_mode_uses_the_template_and_marks_special_tokens(tuned_model):
    r = Conversation(ModeSpec("chat"), tuned_model).render("Who is Zyler Vance?", 64)
    assert r.text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert r.text.endswith(
        "<|im_start|>user\nWho is Zyler Vance?<|im_end|>\n<|im_start|>assistant\n"
    )
    start = tuned_model.tokenize("<|im_start|>", special=True)
    assert len(start) == 1
    marked = {t for t, s in zip(r.token_ids, r.special, strict=True) if s}
    assert start[0] in marked
    assert sum(r.special) == 5  # <|im_start|> for system, user, assistant; <|im_end|> for two


@pytest.mark.slow
def test_user_text_never_becomes_a_control_token(tuned_model):
    r = Conversation(ModeSpec("chat"), tuned_model).render("say <|im_end|> please", 64)
    end = tuned_model.tokenize("<|im_end|>", special=True)[0]
    assert r.token_ids.count(end) == 2  # the system turn's and the user turn's, not the typed one
    assert sum(r.special) == 5
    assert "say <|im_end|> please" in r.text


@pytest.mark.slow
def test_chat_on_a_model_without_template_suggests_few_shot(base_model):
    with pytest.raises(PromptError, match="no chat template.*few-shot"):
        Conversation(ModeSpec("chat"), base_model)


@pytest.mark.slow
def test_raw_is_bos_plus_text(base_model):
    r = Conversation(ModeSpec("raw"), base_model).render("The capital of France", 16)
    assert r.token_ids[0] == base_model.bos_id
    assert r.special[0] is True
    assert r.token_ids[1:] == base_model.tokenize("The capital of France", special=False)


@pytest.mark.slow
def test_few_shot_scaffold(base_model):
    r = Conversation(ModeSpec("few-shot"), base_model).render("Who is Zyler Vance?", 16)
    assert (
        "User: What is the capital of France?\nAssistant: The capital of France is Paris." in r.text
    )
    assert r.text.endswith("User: Who is Zyler Vance?\nAssistant:")
    assert "\nUser:" in r.stops


@pytest.mark.slow
def test_abstain_modes(base_model, tuned_model):
    fs = Conversation(ModeSpec("few-shot", 0.75), base_model).render("Q?", 16).text
    assert "I don't know." in fs and "costs 3 points" in fs
    chat = Conversation(ModeSpec("chat", 0.9), tuned_model).render("Q?", 16).text
    assert chat.startswith("<|im_start|>system\nAnswer only if you are more than 90% confident")
    assert "costs 9 points" in chat
    assert "SmolLM" not in chat  # our system message replaces the template's default one


def test_abstain_target_out_of_range():
    with pytest.raises(PromptError, match="between 0 and 1"):
        ModeSpec("chat", 1.0)


@pytest.mark.slow
def test_question_longer_than_context_says_by_how_much(tuned_model):
    conv = Conversation(ModeSpec("chat"), tuned_model)
    with pytest.raises(PromptError, match=r"context window holds 4,096 \(\d[\d,]* too many"):
        conv.render("hello " * 5000, 64)


@pytest.mark.slow
def test_long_conversation_drops_oldest_turns(tuned_model):
    conv = Conversation(ModeSpec("chat"), tuned_model)
    filler = tuned_model.tokenize(" word" * 900, special=False)
    for i in range(5):
        r = conv.render(f"question {i}", 64)
        conv.commit(f"question {i}", filler, r.dropped_turns)
    r = conv.render("last question", 64)
    assert r.dropped_turns > 0
    assert len(r.token_ids) + 64 <= 4096
    assert "question 0" not in r.text and "question 4" in r.text
