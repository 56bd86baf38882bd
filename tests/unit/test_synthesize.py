from selftaught.prompts import MODIFY_EXAMPLES, modify_messages
from selftaught.synthesize import usable_variant

X = "Explain the ending of the movie Shutter Island."


def test_related_instructions_are_usable():
    assert usable_variant(X, "Explain the ending of the movie Inception in three sentences.") is None
    assert usable_variant(X, "Which scenes of Shutter Island foreshadow its ending?") is None


def test_answers_and_chatter_are_not_instructions():
    # what a weak seed writes when asked for x' (seen in the default run)
    assert usable_variant(X, 'The ending of the movie is "Fantastic" and surprising') == "not_an_instruction"
    assert usable_variant(X, "```python\ndef sort_list(lst):\n    return sorted(lst)\n```") == "not_an_instruction"
    assert usable_variant(X, "Please provide the new instruction with no additional context.") == "chatter"
    assert usable_variant(X, "Sure! Here is a new instruction about movies.") == "chatter"
    assert usable_variant(X, "Explain the ending of the movie Shutter Island.") == "same_as_original"
    assert usable_variant(X, "Explain it.") == "too_short"


def test_modify_messages_put_worked_examples_first():
    assert len(modify_messages(X)) == 1
    msgs = modify_messages(X, shots=2)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert msgs[1]["content"] == MODIFY_EXAMPLES[0][1] and X in msgs[-1]["content"]
    for x, x2 in MODIFY_EXAMPLES:   # our own examples pass our own check
        assert usable_variant(x, x2) is None
