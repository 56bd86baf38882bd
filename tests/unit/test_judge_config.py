"""A checkpoint's judge config: written from the params (with a copy of the template), read back, and put
in place of the params' own keys, so the judge runs as it was trained without params.yaml."""

import json
import shutil

from support.repo import ROOT

from selftaught import judge_config
from selftaught.core.config import Params


def test_written_deterministically_and_applied_in_place_of_the_params(tmp_path):
    trained = Params().model_copy(update={"judge": Params().judge.model_copy(update={
        "template": str(ROOT / "src/selftaught/templates/judge_pairwise.yaml"), "verdict_format": "bracket",
        "calibrate": False, "mode": "free"})})
    out = tmp_path / "iter_1"
    out.mkdir()
    cfg = judge_config.write(trained, out, 1)
    first = (out / judge_config.CONFIG).read_bytes()
    judge_config.write(trained, out, 1)
    assert (out / judge_config.CONFIG).read_bytes() == first
    assert json.loads(first) == cfg and judge_config.read(out) == cfg
    assert ((out / "judge_template.yaml").read_bytes()
            == (ROOT / "src/selftaught/templates/judge_pairwise.yaml").read_bytes())
    # the source file may go away: the checkpoint's copy is used
    moved = shutil.move(out, tmp_path / "elsewhere")
    params, got = judge_config.apply(Params(), moved)
    assert got == cfg
    assert params.judge.template == str(moved / "judge_template.yaml")
    assert (params.judge.verdict_format, params.judge.calibrate, params.evaluate.calibrate) == ("bracket",
                                                                                                False, False)
    assert judge_config.default_mode(params, got) == "free"


def test_a_checkpoint_without_a_config_keeps_the_params(tmp_path):
    params, cfg = judge_config.apply(Params(), tmp_path)
    assert cfg is None and params == Params()
    assert judge_config.default_mode(params, cfg) == Params().evaluate.modes[0]
