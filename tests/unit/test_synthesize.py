"""Synthesis (src/selftaught/synthesize.py): usable variants, rewrite pairs from one call with failures
counted, and over-long instructions cut to fit the prompt budget, not in the pair."""

import pytest

from selftaught.backends import GenerationBackend
from selftaught.core.config import Synthesize
from selftaught.core.schemas import Instruction
from selftaught.prompts import (
    MODIFY_EXAMPLES,
    REWRITE_EXAMPLES,
    modify_messages,
    rewrite_answer_text,
    rewrite_messages,
)
from selftaught.synthesize import parse_rewrite, synthesize, usable_variant

X = "Explain the ending of the movie Shutter Island."


def test_related_instructions_are_usable():
    assert usable_variant(X, "Explain the ending of the movie Inception in three sentences.") is None
    assert usable_variant(X, "Which scenes of Shutter Island foreshadow its ending?") is None


def test_answers_and_chatter_are_not_instructions():
    # what a weak seed writes when asked for x' (seen in the default run)
    assert usable_variant(X, 'The ending of the movie is "Fantastic" and surprising') == "not_an_instruction"
    assert (usable_variant(X, "```python\ndef sort_list(lst):\n    return sorted(lst)\n```")
            == "not_an_instruction")
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


def test_parse_rewrite_reads_two_labelled_blocks():
    assert parse_rewrite("NEW INSTRUCTION: Explain the ending of Inception.\nNEW ANSWER: It is a dream.") == \
        ("Explain the ending of Inception.", "It is a dream.", None)
    assert parse_rewrite("**New instruction:** Why is snow white?\n\n"
                         "**New answer:** Light scatters.\nMore.")[2] is None
    assert parse_rewrite("Explain the ending of Inception.")[2] == "unparseable"
    assert parse_rewrite("NEW ANSWER: only an answer")[2] == "unparseable"
    assert parse_rewrite("NEW INSTRUCTION: Why is snow white?\nNEW ANSWER:   ")[2] == "empty_answer"
    for x, y, x2, y2 in REWRITE_EXAMPLES:     # our examples are in the format we parse, and usable
        assert parse_rewrite(rewrite_answer_text(x2, y2)) == (x2, y2, None)
        assert usable_variant(x, x2) is None
    msgs = rewrite_messages(X, "The hero was the patient.", shots=2)
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 2 + ["user"]
    assert X in msgs[-1]["content"] and "The hero was the patient." in msgs[-1]["content"]


def test_parse_rewrite_reads_the_labels_of_the_template(tmp_path):
    """The reply layout has one home, the rewrite template's `reply`: its labels are what the parser reads."""
    f = tmp_path / "rewrite.yaml"
    f.write_text("kind: rewrite\nuser: 'Write Q: then A: for {{ instruction }} / {{ answer }}'\n"
                 "reply: \"Q: {{ new_instruction }}\\nA: {{ new_answer }}\"\n"
                 "examples: [[Say hi., Hi., Say a long goodbye., Goodbye for now.]]\n")
    reply = rewrite_answer_text("Why is snow white?", "Light scatters.", template=f)
    assert reply == "Q: Why is snow white?\nA: Light scatters."
    assert parse_rewrite(reply, f) == ("Why is snow white?", "Light scatters.", None)
    assert parse_rewrite("**q:** Why is snow white?\n\n**a:** Light scatters.", f)[2] is None
    assert parse_rewrite(reply)[2] == "unparseable"                      # not our default's labels
    assert parse_rewrite("NEW INSTRUCTION: Why?\nNEW ANSWER: Light.", f)[2] == "unparseable"
    msgs = rewrite_messages(X, "The hero was the patient.", shots=1, template=f)
    assert msgs[1] == {"role": "assistant", "content": "Q: Say a long goodbye.\nA: Goodbye for now."}



class ScriptedBackend(GenerationBackend):
    """Answers each request by a rule on its last user message; records every request."""

    name = "scripted"

    def __init__(self, rewrites):
        super().__init__()
        self.rewrites, self.seen, self.requests = rewrites, [], []

    def generate(self, requests, sampling, desc="generate"):
        out = []
        for r in requests:
            user = dict(r.messages[-1])["content"]
            self.seen.append(user)
            self.requests.append(r.message_dicts())
            if user.startswith("Below is an instruction and a good answer"):
                x = user.split("Instruction: ")[1].split("\n")[0]
                out.append(self.rewrites[x])
            elif user.startswith("Below is an instruction."):
                out.append("Explain the plot of a different movie in detail.")
            else:
                out.append(f"good answer to: {user}")
        self.usage.requests += len(requests)
        return out

    def next_token_margins(self, requests, options=("A", "B"), desc=""):
        raise AssertionError

    def continuation_logprobs(self, requests, continuations, desc=""):
        raise AssertionError


def test_rewrite_pairs_come_from_one_call_and_failures_are_counted():
    xs = [Instruction(f"i{n}", x) for n, x in enumerate([
        "Explain the ending of the movie Shutter Island.", "Give three tips for keeping houseplants alive.",
        "Write a poem about the sea at night.", "List the planets of the solar system.",
        "Describe how bread is baked at home."])]
    rewrites = {
        xs[0].instruction: "NEW INSTRUCTION: Explain the ending of the movie Inception.\n"
                           "NEW ANSWER: Cobb may be dreaming.",
        xs[1].instruction: "I like plants.",                                         # unparseable
        xs[2].instruction: "NEW INSTRUCTION: Write a poem about the sea at dawn.\n"
                           "NEW ANSWER:",                                            # empty answer
        xs[3].instruction: "NEW INSTRUCTION: List the moons of the planet Jupiter.\nNEW ANSWER: "
                           "good answer to: List the planets of the solar system.",  # same as chosen
        xs[4].instruction: "NEW INSTRUCTION: Sure, here is one.\nNEW ANSWER: Bread.",  # chatter
    }
    p = Synthesize(pairs="rewrite", modify_shots=1)
    backend = ScriptedBackend(rewrites)
    got, m = synthesize(backend, "models/generator", xs, p)
    assert backend.usage.requests == 2 * len(xs)          # x's answer, then one rewrite call each
    assert sum(s.startswith("Below is an instruction and a good answer") for s in backend.seen) == len(xs)
    assert not any(s.startswith("Below is an instruction.\n") for s in backend.seen)   # no two-step request
    by_id = {q.id: q for q in got}
    assert by_id["i0"].negative_source == "modified" and by_id["i0"].rejected == "Cobb may be dreaming."
    assert by_id["i0"].negative_instruction == "Explain the ending of the movie Inception."
    assert {q.negative_source for q in got if q.id != "i0"} == {"neighbour"}
    assert (m["rewrite_parsed"], m["rewrite_unparseable"], m["rewrite_empty_answer"]) == (3, 1, 1)
    assert (m["rewrite_same_as_chosen"], m["variant_chatter"], m["variant_ok"]) == (1, 1, 2)
    assert (m["negative_modified"], m["negative_neighbour"]) == (1, 4)
    dropped, md = synthesize(ScriptedBackend(rewrites), "g", xs, p.model_copy(update={"fallback": "drop"}))
    assert [q.id for q in dropped] == ["i0"] and md["dropped_no_variant"] == 4
    # switched off (two_step): x' comes from its own request, and no rewrite metrics
    _, m2 = synthesize(ScriptedBackend(rewrites), "g", xs, Synthesize(pairs="two_step"))
    assert not any(k.startswith("rewrite_") for k in m2)


@pytest.mark.parametrize("pairs", ["two_step", "rewrite"])
def test_a_long_instruction_is_cut_to_fit_the_prompt_budget_not_in_the_pair(pairs):
    """A pool instruction far over generation.max_prompt_tokens: its prompts are fitted by cutting the
    instruction (counted), so the backend never cuts a prompt's start (system prompt, worked examples);
    prompts that fit are untouched; the pair keeps the whole instruction."""
    long = "Explain the ending of the movie Shutter Island " + "in great detail, " * 400 + "please."
    xs = [Instruction("i0", long), Instruction("i1", "Give three tips for keeping houseplants alive.")]
    rewrites = DefaultRewrites({xs[1].instruction: "NEW INSTRUCTION: Give three tips for growing herbs.\n"
                                                   "NEW ANSWER: Sun."})

    def counting(backend):                   # a backend with a tokenizer: 4 characters a token
        backend.tok = object()
        backend.prompt_length = lambda msgs: sum(len(m["content"]) for m in msgs) // 4
        return backend

    budget = 1200
    fitted = counting(ScriptedBackend(rewrites))
    got, m = synthesize(fitted, "g", xs, Synthesize(pairs=pairs), max_prompt_tokens=budget)
    assert m["prompts_cut_to_fit"] == 1
    sent = fitted.requests
    assert all(fitted.prompt_length(r) <= budget for r in sent)
    assert [r[:-1] for r in sent if long[:40] in r[-1]["content"]] == \
        [r[:-1] for r in sent if long[:40] in r[-1]["content"] and long not in r[-1]["content"]]
    assert {q.id: q.instruction for q in got}["i0"] == long
    plain = counting(ScriptedBackend(rewrites))
    _, m = synthesize(plain, "g", xs, Synthesize(pairs=pairs))                  # no budget: nothing cut
    assert m["prompts_cut_to_fit"] == 0 and any(long in s for s in plain.seen)
    short = [r for r in sent if xs[1].instruction in r[-1]["content"]]          # prompts that fit: untouched
    assert short and short == [r for r in plain.requests if xs[1].instruction in r[-1]["content"]]
    # a budget the template alone exceeds: left to the backend's last-resort cut, counted, not fatal
    _, m = synthesize(counting(ScriptedBackend(rewrites)), "g", xs, Synthesize(pairs=pairs),
                      max_prompt_tokens=10)
    assert m["prompts_over_budget"] == 2                # both instructions: their worked-example prompts


class DefaultRewrites(dict):
    """Rewrite replies by instruction ('' when unknown: unparseable)."""

    def __getitem__(self, x):
        return self.get(x, "")
