"""The command's help conventions: a description and examples for every subcommand, help text for every
option with its default shown, --version, and -v/-q in front of any subcommand."""

import argparse
import re
import tomllib

import pytest
from support.repo import ROOT

from selftaught import __version__
from selftaught.cli import main

COMMANDS = ["judge", "report", "profile", "verify", "dp-join"]


def help_text(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def parser():
    """The parser main() builds, caught at parse time."""
    got = {}
    real = argparse.ArgumentParser.parse_args

    def grab(self, args=None, namespace=None):
        got.setdefault("parser", self)
        return real(self, args, namespace)

    argparse.ArgumentParser.parse_args = grab
    try:
        main(["profile", str(ROOT / "configs/profiles/five_iterations.yaml")])
    finally:
        argparse.ArgumentParser.parse_args = real
    return got["parser"]


def subparsers(ap):
    return next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_subcommand_has_a_description_and_examples(capsys):
    top = help_text(capsys)
    assert "examples:" in top and "--version" in top and "-v, --verbose" in top and "-q, --quiet" in top
    for cmd in COMMANDS:
        out = help_text(capsys, cmd)
        usage, _, rest = out.partition("\n\n")
        assert rest.strip() and not rest.startswith("options:"), (cmd, "no description")
        assert re.search(r"^examples( \(.*\))?:\n  selftaught " + cmd, out, re.M), (cmd, "no examples")


def test_every_option_has_help_and_shows_its_default(capsys):
    subs = subparsers(parser())
    assert set(subs) == set(COMMANDS)
    for name, sub in subs.items():
        for a in sub._actions:
            if a.dest != "help":
                assert a.help, (name, a.dest)
    judge_help = " ".join(help_text(capsys, "judge").split())
    assert "(default: params.yaml when it exists" in judge_help
    assert "(default: params.yaml)" in " ".join(help_text(capsys, "profile").split())
    assert "(default: metrics)" in " ".join(help_text(capsys, "report").split())
    assert "(default: None)" not in judge_help          # required options and flags show none


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"selftaught {__version__}" == f"selftaught {version}"


def run_judge(tmp, model, capsys, *flags, pairs="pairs.jsonl"):
    code = main([*flags, "judge", "--model", str(model), "--pairs", str(tmp / pairs), "--out",
                 str(tmp / "out.jsonl"), "--params", str(tmp / "params.yaml"), "--mode", "likelihood",
                 "--unlabelled"])
    return code, capsys.readouterr().err


def test_info_lines_are_timestamped_off_a_terminal_and_quiet_hides_them_not_errors(cli_dir, capsys):
    tmp, model = cli_dir
    code, err = run_judge(tmp, model, capsys)
    assert code == 0
    line = next(x for x in err.splitlines() if "verdicts; parse rate" in x)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO selftaught\.cli: 6 verdicts", line), line
    code, err = run_judge(tmp, model, capsys, "-q")
    assert code == 0 and "verdicts; parse rate" not in err
    code, err = run_judge(tmp, model, capsys, "-q", pairs="missing.jsonl")
    assert code == 2 and "missing.jsonl" in err


def test_arguments_after_a_double_dash_still_reach_dvc_with_a_verbosity_flag_first(capsys):
    assert main(["-v", "profile", str(ROOT / "configs/profiles/five_iterations.yaml"), "--", "--temp",
                 "evaluate@1"]) == 0
    assert capsys.readouterr().out.split()[-2:] == ["--temp", "evaluate@1"]
