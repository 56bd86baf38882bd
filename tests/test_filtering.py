from selftaught.filtering import rejection_sample, training_records
from selftaught.schemas import Judgment, SyntheticPair
from selftaught.verdict import parse_verdict


def J(pid, order, sample, verdict, text="r"):
    return Judgment(pid, order, sample, text, verdict, "free")


def test_keeps_one_correct_per_item_and_drops_the_rest():
    js = [J("p", 0, 0, "B"), J("p", 0, 1, "A"), J("p", 0, 2, "A"), J("p", 1, 0, None), J("p", 1, 1, "A"),
          J("q", 0, 0, "A"), J("q", 1, 0, "B")]
    kept, stats = rejection_sample(js, seed=0, balance=False)
    assert [(j.pair_id, j.order) for j in kept] == [("p", 0), ("q", 0), ("q", 1)]
    assert all(j.correct for j in kept)
    assert stats["dropped_no_correct"] == 1 and stats["items"] == 4 and stats["judgments"] == 7
    assert stats["parseable"] == 6 and stats["correct"] == 4


def test_balance_equalises_a_and_b_wins():
    js = [J(f"p{i}", 0, 0, "A") for i in range(6)] + [J(f"p{i}", 1, 0, "B") for i in range(2)]
    kept, stats = rejection_sample(js, seed=1, balance=True)
    assert sum(j.verdict == "A" for j in kept) == sum(j.verdict == "B" for j in kept) == 2
    assert stats["a_share"] == 0.5 and stats["dropped_balance"] == 4


def test_selection_is_seeded():
    js = [J("p", 0, s, "A", text=f"t{s}") for s in range(5)]
    pick = lambda seed: rejection_sample(js, seed, False)[0][0].text  # noqa: E731
    assert pick(3) == pick(3)
    assert len({pick(s) for s in range(20)}) > 1


def test_training_records_are_prompt_completion_in_free_format():
    pair = SyntheticPair("p", "x", "good", "bad", "x2", "modified", "m", 0)
    recs, counts = training_records([J("p", 1, 0, "B", text="B fits x.\nVerdict: [[B]]")], {"p": pair}, 1000)
    (r,) = recs
    assert counts == {"records": 1, "with_reasoning": 1, "reasoning_dropped_as_copy": 0}
    assert r["completion"][0]["content"] == "B fits x.\nVerdict: [[B]]"
    assert r["prompt"][-1]["role"] == "user" and "<<<RESPONSE A\nbad\n" in r["prompt"][-1]["content"]
    assert parse_verdict(r["completion"][0]["content"]) == "B"


def test_reasoning_that_copies_a_judged_response_is_dropped():
    good = "The capital of France is Paris, a city on the Seine with many museums."
    pair = SyntheticPair("p", "Name the capital of France.", good, "Berlin is in Germany.", "x2", "modified", "m", 0)
    copy = J("p", 0, 0, "A", text="the capital of France is Paris, a city\nVerdict: [[A]]")
    quoted = J("p", 1, 0, "B", text="<<<RESPONSE A says Berlin\nVerdict: [[B]]")
    own = J("p", 1, 1, "B", text="B names the right city.\nVerdict: [[B]]")
    recs, counts = training_records([copy, quoted, own], {"p": pair}, 1000)
    assert [r["completion"][0]["content"] for r in recs] == ["Verdict: [[A]]", "Verdict: [[B]]", "B names the right city.\nVerdict: [[B]]"]
    assert counts == {"records": 3, "with_reasoning": 1, "reasoning_dropped_as_copy": 2}
    kept_as_is, _ = training_records([copy], {"p": pair}, 1000, reasoning="keep")
    assert kept_as_is[0]["completion"][0]["content"].startswith("the capital of France")
    none, _ = training_records([own], {"p": pair}, 1000, reasoning="none")
    assert none[0]["completion"][0]["content"] == "Verdict: [[B]]"
