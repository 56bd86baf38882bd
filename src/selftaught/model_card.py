"""A checkpoint's model card, `README.md` beside its weights: what it is (iteration, parent, objective, base
model), what it was made from (the md5 of each input as dvc.lock records it for the stage that wrote it,
dvc_hash.py), its key params and training metrics, and how to use it. The YAML front matter holds the same
facts for programs (`read`).

Deterministic (sorted keys, no time, host or absolute path beyond what the params hold), since the card is
part of the hashed checkpoint and a rebuild must stay byte-identical."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .core.io import write_text
from .core.metrics import GENERATOR_KEY
from .dvc_hash import md5

CARD = "README.md"


@dataclass(frozen=True)
class Card:
    """iteration: k (0: the seed); stage: the DVC stage that wrote it; parent: the checkpoint it was trained
    from (None for the seed); inputs: the stage's data and model inputs (their md5s are computed); params:
    the params sections that shaped it; metrics: its training metrics; judge: its judge config, if any."""
    iteration: int
    stage: str
    parent: str | None = None
    inputs: tuple = ()
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    judge: dict | None = None


def facts(card: Card) -> dict:
    """The front matter: every fact of the card, the inputs with their md5s."""
    inputs = {Path(p).as_posix(): md5(p) for p in card.inputs}
    return {"selftaught": {"iteration": card.iteration, "stage": card.stage, "parent": card.parent,
                           "inputs_md5": inputs, "params": card.params, "metrics": card.metrics,
                           "judge_config": card.judge is not None},
            "library_name": "transformers", "tags": ["selftaught", "llm-as-a-judge", "self-taught-evaluator"]}


def _block(obj) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True).rstrip()


def render(card: Card) -> str:
    f = facts(card)
    st = f["selftaught"]
    what = ("the seed judge (iteration 0, the baseline)" if card.iteration == 0
            else f"the judge of iteration {card.iteration}")
    rows = [("iteration", card.iteration), ("stage", f"`{card.stage}`"),
            ("parent", f"`{card.parent}` ({st['inputs_md5'].get(card.parent, '-')})" if card.parent else "-")]
    train = card.params.get("train", {})
    if train:
        rows += [("objective", train.get("objective")), ("method", train.get("method")),
                 ("init", train.get("init"))]
    seed = card.params.get("seed", {})
    rows.append(("base model", f"`{seed.get('path')}` ({seed.get('source')})" if seed else "-"))
    lines = ["---", _block(f), "---", "", f"# selftaught: {what}", "",
             "A checkpoint of the selftaught pipeline (Self-Taught Evaluators: an LLM judge trained on "
             "synthetic pairs, no human labels).", ""]
    if card.metrics.get(GENERATOR_KEY):
        lines += [f"**Generator: {card.metrics[GENERATOR_KEY]}.** Trained on stand-in texts to measure the "
                  "pipeline: not a judge to use.", ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "## Inputs", "", "md5 as DVC computes it (dvc.lock of this revision):", ""]
    lines += [f"- `{p}`: `{h}`" for p, h in st["inputs_md5"].items()]
    if card.params:
        lines += ["", "## Params", "", "```yaml", _block(card.params), "```"]
    if card.metrics:
        metrics = json.dumps(card.metrics, indent=2, sort_keys=True)
        lines += ["", "## Training metrics", "", "```json", metrics, "```"]
    lines += ["", "## Use", ""]
    if card.judge is not None:
        lines += [f"Its judge config is `judge.json` (prompt template `{card.judge['template']}`, verdict "
                  f"format `{card.judge['verdict_format']}`, mode `{card.judge['mode']}`, calibrate "
                  f"`{card.judge['calibrate']}`).", ""]
    lines += ["```python", "from selftaught import Judge", "",
              f'judge = Judge.load("models/iter_{card.iteration}")',
              'judge.compare("Name a prime number.", "7", "8").winner   # "a", "b" or None', "```", "",
              "or `selftaught judge --model <this directory> --pairs my.jsonl --out verdicts.jsonl`.", ""]
    return "\n".join(lines)


def write(out_dir, card: Card) -> None:
    write_text(Path(out_dir) / CARD, render(card))


def read(model_dir) -> dict | None:
    """The card's front matter, or None when the checkpoint has no card."""
    path = Path(model_dir) / CARD
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return None
    return yaml.safe_load(text.split("---\n", 2)[1])
