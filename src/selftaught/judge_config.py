"""A checkpoint's judge config, `judge.json` beside its weights, with a copy of its judge prompt template:
what a judge needs to be used as it was trained, without the pipeline's params.yaml (`selftaught judge
--model`, `selftaught.Judge.load`). The train stage writes it from the params that shaped the judge's
training targets (judge.template, judge.template_record, judge.verdict_format, generation.max_judged_chars)
and the pipeline's judging mode and calibration (judge.mode, judge.calibrate); everything else (batch size,
dtype, token budget) is how the judge is run, not what it is, and comes from params.yaml or the defaults.

Written deterministically (sorted keys, no time or host), since it is part of the hashed checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .core.io import write_json

CONFIG = "judge.json"
TEMPLATE = "judge_template"     # + the template file's suffix (.yaml, .prompt or .jsonl)
FORMAT = 1


def write(params, out_dir, iteration: int) -> dict:
    """Write judge.json and the template copy into the checkpoint directory `out_dir`; return the config."""
    out_dir = Path(out_dir)
    src = Path(params.judge.template)
    template = TEMPLATE + src.suffix
    shutil.copyfile(src, out_dir / template)
    cfg = {"format": FORMAT, "iteration": iteration, "template": template,
           "template_source": src.as_posix(), "template_record": params.judge.template_record,
           "verdict_format": params.judge.verdict_format, "mode": params.judge.mode,
           "max_judged_chars": params.generation.max_judged_chars, "calibrate": params.judge.calibrate}
    write_json(out_dir / CONFIG, cfg)
    return cfg


def read(model_dir) -> dict | None:
    """The judge config of a checkpoint, or None when it has none (the seed, any other checkpoint)."""
    path = Path(model_dir) / CONFIG
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def apply(params, model_dir):
    """(params with the checkpoint's judge config in place of their own keys, the config or None). The
    template becomes the checkpoint's copy; calibrate applies to evaluation as to judging."""
    cfg = read(model_dir)
    if cfg is None:
        return params, None
    judge = params.judge.model_copy(update={
        "template": str(Path(model_dir) / cfg["template"]), "template_record": cfg["template_record"],
        "verdict_format": cfg["verdict_format"], "mode": cfg["mode"], "calibrate": cfg["calibrate"]})
    return params.model_copy(update={
        "judge": judge,
        "evaluate": params.evaluate.model_copy(update={"calibrate": cfg["calibrate"]}),
        "generation": params.generation.model_copy(update={"max_judged_chars": cfg["max_judged_chars"]}),
    }), cfg


def default_mode(params, cfg) -> str:
    """The verdict mode when none is asked for: the one the pipeline judged with, or evaluate.modes' first."""
    return cfg["mode"] if cfg else params.evaluate.modes[0]
