"""The `selftaught` command's help: each subcommand's description and examples, the help of options that
have none where they are declared, and a formatter that shows every default. `document(parser)` applies them
to the parser cli.py builds; tests/unit/test_cli_help.py checks that nothing is left undocumented."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help (where there is one: not for required options, flags, or
    options whose default the params decide, which say so); descriptions and examples printed as written."""

    def _get_help_string(self, action):
        if (action.default in (None, []) or action.required or action.nargs == 0
                or "(default" in (action.help or "")):
            return action.help
        return super()._get_help_string(action)


EPILOG = """examples:
  selftaught judge --model models/iter_2 --pairs my.jsonl --out verdicts.jsonl
  selftaught report
  selftaught profile configs/profiles/five_iterations.yaml --run
  selftaught verify --iteration 1
  selftaught judge --help      # each command: what it does, its options and defaults, examples

Logs go to stderr: through rich on a terminal, as timestamped lines otherwise."""

DESCRIPTIONS = {
    "judge": """Judge pairs of responses (the benchmark schema: id, instruction, chosen, rejected; optional
source, subset) with a checkpoint, in both orders, and write one verdict record per pair and order.
A pipeline checkpoint (models/iter_<k>) carries its judge config (judge.json: prompt template, verdict
format, calibration); settings it does not carry come from --params when that file exists, else from the
defaults of src/selftaught/core/config.py.""",
    "report": """Tabulate the evaluated iterations (metrics/iter_<k>.json): print the table and write
reports/summary.md and the CSVs that `dvc plots show` draws.""",
    "profile": """Print a profile (configs/profiles/*.yaml) as the `dvc exp run -S key=value` command that
applies it, after validating it against params.yaml; --run runs it.""",
    "verify": """Rebuild iteration K in a fresh clone with an empty DVC cache and compare every output's md5
with the committed dvc.lock (exit 1 on a mismatch).""",
    "dp-join": """On another machine: run vLLM data-parallel ranks for the stages of a machine that starts
fewer ranks than generation.data_parallel_size (SELFTAUGHT_DP_LOCAL there). The ranks connect to HOST:PORT
(SELFTAUGHT_DP_ADDR there), proving the shared SELFTAUGHT_DP_KEY; a fresh set joins each engine group a stage
starts, until none comes within --wait seconds. The model path must be the same on both machines (a shared
file system). Run it in the vLLM venv; docs/scaling.md has the SLURM lines.""",
}

EXAMPLES = {
    "judge": """examples:
  selftaught judge --model models/iter_2 --pairs my.jsonl --out verdicts.jsonl --metrics m.json
  selftaught judge --model models/iter_2 --pairs my.jsonl --out v.jsonl --mode likelihood --unlabelled
  selftaught judge --model /path/to/any/checkpoint --pairs my.jsonl --out v.jsonl --params params.yaml""",
    "report": """examples:
  selftaught report
  selftaught report --metrics other/metrics --out other/reports""",
    "profile": """Arguments after `--` go to `dvc exp run` as they are.

examples:
  selftaught profile configs/profiles/five_iterations.yaml
  selftaught profile configs/profiles/paper.yaml -S seed.source=hf_dir -S seed.path=/models/judge --run
  selftaught profile configs/profiles/five_iterations.yaml --run -- --temp evaluate@1""",
    "verify": """examples:
  selftaught verify --iteration 1
  selftaught verify --iteration 0 --repo /path/to/clone --keep""",
    "dp-join": """The stages' machine (node0, 8 GPUs, data_parallel_size 16) runs
  SELFTAUGHT_DP_LOCAL=8 SELFTAUGHT_DP_ADDR=node0:29600 SELFTAUGHT_DP_KEY=$KEY dvc repro

examples (on node1, 8 GPUs, with the same SELFTAUGHT_DP_KEY exported):
  selftaught dp-join node0:29600 --ranks 8
  selftaught dp-join node0:29600 --ranks 8 --wait 1800""",
}

# Options declared without help text in cli.py, by subcommand and destination.
OPTION_HELP = {
    "judge": {"model": "the checkpoint directory (safetensors; a LoRA adapter over its base works too)",
              "out": "the verdict records (JSONL, one per pair and order)",
              "mode": "the verdict mode (default: the checkpoint's judge config's mode, else the first of "
                      "evaluate.modes)",
              "backend": "the generation backend (default: generation.backend)",
              "temperature": "the judgments' sampling temperature (default: evaluate.temperature)",
              "max_new_tokens": "tokens of each judgment (default: evaluate.max_new_tokens)",
              "params": "the params file for settings the checkpoint's judge config does not carry "
                        "(default: params.yaml when it exists, else core/config.py's defaults)"},
    "report": {"params": "the params file (its iterations are tabulated)",
               "out": "the folder of summary.md and the CSVs"},
    "profile": {"file": "the profile: a YAML mapping of params keys to values",
                "params": "the params file the profile is validated against"},
}


def document(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give the top-level parser and each subcommand its description, examples, option help and the formatter
    that shows defaults."""
    parser.formatter_class = HelpFormatter
    parser.epilog = EPILOG
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sub.formatter_class = HelpFormatter
                sub.description = DESCRIPTIONS.get(name, sub.description)
                sub.epilog = EXAMPLES.get(name, sub.epilog)
                for a in sub._actions:
                    if a.help is None and a.dest in OPTION_HELP.get(name, {}):
                        a.help = OPTION_HELP[name][a.dest]
    return parser
