"""The text-level think-aware stopper used by the llama.cpp, server and vLLM paths."""

from harness.thinking import AnswerWatcher, ThinkTags, prompt_opens_thinking

TAGS = ThinkTags()


def _run(pieces, stops, *, tags=TAGS, opened=False, answer_limit=5, total_limit=50):
    watcher = AnswerWatcher(
        stops, tags, opened=opened, answer_limit=answer_limit, total_limit=total_limit
    )
    fed = 0
    for piece in pieces:
        fed += 1
        if watcher.feed(piece):
            break
    return watcher.finish(ended=fed == len(pieces) and not watcher.done), fed


def test_stops_do_not_apply_inside_thinking():
    pieces = ["<think>", "a", "\n", "b", "</think>", "\n", "Paris", "\n", "more"]
    made, fed = _run(pieces, ["\n"])
    assert made.thought and made.answer == "Paris"
    assert fed == 8  # stopped at the newline after the answer, not at the one in the thinking
    assert not made.hit_token_limit


def test_a_model_that_does_not_think_is_cut_like_lm_eval():
    made, fed = _run(["Par", "is", "\n", "x"], ["\n"])
    assert (made.answer, made.thought, fed) == ("Paris", False, 3)


def test_the_answer_has_its_own_limit_after_the_thinking():
    pieces = ["<think>"] + ["t"] * 20 + ["</think>", " ", "a"] + ["b"] * 10
    made, fed = _run(pieces, ["\n"], answer_limit=3)
    assert made.hit_token_limit and made.answer == "abb"
    assert fed == 22 + 1 + 3  # thinking (22 pieces), whitespace not counted, 3 answer tokens


def test_thinking_that_never_ends_has_no_answer_and_hits_the_limit():
    made, _ = _run(["<think>"] + ["t"] * 100, ["\n"], total_limit=30)
    assert made.answer == "" and made.hit_token_limit and made.tokens == 30


def test_opened_by_the_prompt():
    assert prompt_opens_thinking("<|im_start|>assistant\n<think>\n", TAGS)
    made, _ = _run(["x", "\n", "</think>", "ok", "\n"], ["\n"], opened=True)
    assert made.thought and made.answer == "ok"


def test_without_tags_the_first_stop_ends_it():
    made, fed = _run(["<think>", "\n", "x"], ["\n"], tags=None)
    assert made.answer == "<think>" and fed == 2 and not made.thought
