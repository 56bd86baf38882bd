"""Synthetic pairs and sampled judgments, written as the synthesize and judge stages write them: every kind
of item the filter sees (correct and wrong judgments, only correct, only wrong, unparseable) and no model
needed."""

import json
from pathlib import Path

from selftaught.core.schemas import Judgment, SyntheticPair

TOPICS = ["the judge", "a short answer", "the topic", "a good response", "the instruction", "two responses"]

# per pair and order: the verdicts of its samples (None = unparseable); the winner is A in order 0, B in
# order 1
VERDICTS = [
    (["B", "A", None], [None, "B"]),      # both orders: correct and wrong (or unparseable)
    (["A"], ["A", "A", "B"]),             # order 0 only correct; order 1 both
    (["B", "B"], [None]),                 # only wrong; only unparseable
    (["A", None], ["B", "A"]),
    (["A", "B"], ["B"]),
    ([None, "A"], ["A", "B"]),
]


def write_pairs_and_judgments(pairs_path: Path, judgments_path: Path) -> tuple[list, list]:
    pairs, judgments = [], []
    for i, (topic, orders) in enumerate(zip(TOPICS, VERDICTS)):
        p = SyntheticPair(f"p{i}", f"write about {topic}", f"a good response is helpful about {topic}",
                          f"write a short answer about something else {i}", f"write about another {topic}",
                          "modified", "m", 0)
        pairs.append(p)
        for order, verdicts in enumerate(orders):
            for s, v in enumerate(verdicts):
                text = (f"sample {s}: the response that was asked\nVerdict: [[{v}]]" if v
                        else f"sample {s}: no verdict")
                judgments.append(Judgment(p.id, order, s, text, v, "free"))
    Path(pairs_path).parent.mkdir(parents=True, exist_ok=True)
    Path(pairs_path).write_text("".join(json.dumps(p.to_dict()) + "\n" for p in pairs))
    Path(judgments_path).write_text("".join(json.dumps(j.to_dict()) + "\n" for j in judgments))
    return pairs, judgments
