"""The paper profile (configs/profiles/paper.yaml, src/selftaught/profile.py): valid against params.yaml,
printed as `dvc exp run -S` flags that DVC accepts (its run end to end on the tiny model:
tests/e2e/test_paper_profile.py)."""

import pytest
import yaml
from support.repo import ROOT

from selftaught import profile
from selftaught.core import config
from selftaught.core.errors import ParamError

PAPER = ROOT / "configs" / "profiles" / "paper.yaml"


def shipped():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_paper_profile_is_valid_and_means_what_the_paper_did():
    p = config.validate(profile.apply(shipped(), profile.read(PAPER)))
    assert len(p.iterations) == 5 and all(it.gen == 0 and it.prev == k - 1 for k, it in p.iterations.items())
    assert ((p.train.init, p.train.learning_rate, p.train.weight_decay, p.train.lr_scheduler)
            == ("seed", 1e-6, 0.1, "cosine"))
    assert p.judge.verdict_format == "bracket" and p.evaluate.samples == 32


def test_a_profile_key_params_yaml_lacks_is_refused():
    with pytest.raises(ParamError, match="train.learnig_rate: no such key"):
        profile.apply(shipped(), {"train.learnig_rate": 1e-6})


def test_set_args_edit_mappings_entry_by_entry():
    args = profile.set_args({"iterations": {"1": {"prev": 0, "gen": 0}, "3": {"prev": 2, "gen": 2}},
                             "train.init": "seed"}, shipped())
    assert args[1::2] == ["~iterations.2", "iterations.1={prev:0,gen:0}", "+iterations.3={prev:2,gen:2}",
                          "train.init=seed"]


def test_arguments_after_a_double_dash_go_to_dvc_exp_run(capsys):
    from selftaught.cli import main

    assert main(["profile", str(PAPER), "--name", "p", "-S", "train.batch_size=2", "--", "--temp",
                 "evaluate@1"]) == 0
    line = capsys.readouterr().out.split()
    assert (line[:5] == ["dvc", "exp", "run", "-n", "p"]
            and line[-3:] == ["train.batch_size=2", "--temp", "evaluate@1"])


@pytest.mark.parametrize("content, message", [
    (b"judge.samples: 4\ntrain.epochs: 2\njudge.samples: 8\n",
     "line 3: not valid YAML (key 'judge.samples' repeated (first on line 1))"),
    (b"judge.samples: 4\n# caf\xe9\n", "line 2: not valid UTF-8"),
    (b"judge.samples: [4\n", "line 2: not valid YAML"),
])
def test_a_malformed_profile_is_one_line_naming_file_and_line(tmp_path, capsys, content, message):
    from selftaught.cli import main

    f = tmp_path / "p.yaml"
    f.write_bytes(content)
    assert main(["profile", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{f}: {message}" in " ".join(err.split()), err


@pytest.mark.parametrize("arg, message", [
    ("judge.samples", "-S: judge.samples: expected KEY=VALUE"),
    ("=8", "-S: =8: expected KEY=VALUE"),
    ("judge.samples=[8", "-S: judge.samples: the value '[8' is not valid YAML"),
])
def test_a_malformed_override_is_refused(capsys, arg, message):
    from selftaught.cli import main

    assert main(["profile", str(PAPER), "-S", arg]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_an_override_given_twice_is_refused(capsys):
    from selftaught.cli import main

    assert main(["profile", str(PAPER), "-S", "judge.samples=8", "-S", "judge.samples=2"]) == 2
    assert "-S: judge.samples: given twice" in capsys.readouterr().err
