"""The `selftaught` command: judge your own pairs, print the report, verify a rebuild."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import __version__, cli_help, logs
from .core.errors import InputError, ParamError, os_error
from .core.metrics import MODES

console = Console(stderr=True)
log = logging.getLogger(__name__)


def cmd_judge(args) -> int:
    from .api import Judge
    from .core import config
    from .core.io import read_jsonl, report_skipped, write_json, write_jsonl
    from .core.metrics import HEADLINE
    from .core.safety import check_model_dir, check_paths
    from .core.schemas import Pair
    from .report import print_eval

    # a checkpoint's judge config (judge.json) is enough: params.yaml only adds what it does not carry
    params_path = args.params or ("params.yaml" if Path("params.yaml").is_file() else None)
    params = config.load(params_path) if params_path else config.Params()
    # each flag over its params key, checked as params.yaml is (same ranges and cross-field checks)
    for flag, key, value in (("--backend", "generation.backend", args.backend),
                             ("--temperature", "evaluate.temperature", args.temperature),
                             ("--max-new-tokens", "evaluate.max_new_tokens", args.max_new_tokens)):
        if value is not None:
            params = config.override(params, {key: value}, flag)
    check_paths({"--pairs": args.pairs, "--model": args.model, "--params": params_path},
                {"--out": args.out, "--metrics": args.metrics})
    skipped = [] if args.skip_invalid else None
    pairs = read_jsonl(args.pairs, Pair, skipped)
    if skipped:
        log.warning("\n".join(report_skipped(skipped, "--skip-invalid")))
    check_model_dir(args.model, "--model")
    judge = Judge.load(args.model, params)
    log.debug(f"judge config of {args.model}: {judge.config}")
    pairs = [p if p.benchmark
             else type(p)(**{**p.to_dict(), "benchmark": Path(args.pairs).stem, "subset": p.subset or "all"})
             for p in pairs]
    result = judge.judge(pairs, args.mode, args.labelled, args.temperature, args.max_new_tokens)
    write_jsonl(args.out, result.records)
    m, mode = result.metrics, result.mode
    if args.labelled:
        print_eval(Path(args.model).name, {mode: m}, Console())
        if args.metrics:
            write_json(args.metrics, {"mode": mode, **{k: m[k] for k in HEADLINE}, "a_share": m["a_share"],
                                      "subsets": {s: v["accuracy"] for b in m["benchmarks"].values()
                                                  for s, v in b["subsets"].items()},
                                      "skipped_invalid": len(skipped or ())})
    else:
        log.info(f"{len(result.records)} verdicts; parse rate {m['parse_rate']:.3f}; "
                 f"position consistency {m['position_consistency']:.3f}")
        if args.metrics:
            write_json(args.metrics, {"mode": mode, **m, "skipped_invalid": len(skipped or ())})
    return 0


def cmd_report(args) -> int:
    from .core import config
    from .report import print_table, write_report

    params = config.load(args.params)
    metrics = Path(args.metrics)
    if not metrics.is_dir():
        raise InputError(metrics, "--metrics: no such folder (the folder of iter_<k>.json)")
    files = [metrics / f"iter_{k}.json" for k in [0, *params.iterations]
             if (metrics / f"iter_{k}.json").exists()]
    if not files:
        raise InputError(metrics, "no iter_<k>.json yet: run `dvc repro` first")
    for k in [0, *params.iterations]:
        if not (metrics / f"iter_{k}.json").exists():
            console.print(f"note: {metrics / f'iter_{k}.json'} does not exist (iteration {k} not evaluated "
                          f"yet): left out", highlight=False, soft_wrap=True, markup=False)
    val = [metrics / f"val_{k}.json" for k in [0, *params.iterations] if (metrics / f"val_{k}.json").exists()]
    print_table(write_report(files, args.out, validation_files=val), Console())
    return 0


def cmd_profile(args) -> int:
    import yaml

    from . import profile
    from .core import config

    extra = {}
    for kv in args.set:
        key, eq, value = kv.partition("=")
        if not eq or not key.strip():
            raise ParamError(kv, "expected KEY=VALUE, e.g. judge.samples=8", "-S")
        if key in extra:
            raise ParamError(key, "given twice", "-S")
        try:
            extra[key] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ParamError(key, f"the value {value!r} is not valid YAML ({getattr(e, 'problem', e)})",
                             "-S") from None
    overrides = {**profile.read(args.file), **extra}
    raw = config.read_raw(args.params)
    # a bad profile fails here, not in DVC
    config.validate(profile.apply(raw, overrides, args.file), args.file)
    argv = profile.command(args.name or Path(args.file).stem, overrides, raw, args.dvc_args)
    if not args.run:
        print(profile.shell_line(argv))
        return 0
    import subprocess

    return subprocess.call(argv)


def cmd_verify(args) -> int:
    from .verify import verify

    if not Path(args.repo).is_dir():
        raise InputError(args.repo, "--repo: no such folder")
    return verify(args.iteration, repo=args.repo, keep=args.keep)


def cmd_dp_join(args) -> int:
    from .backends.dp_rank import join_ranks

    if args.ranks < 1 or not args.wait > 0:
        raise ParamError("--ranks" if args.ranks < 1 else "--wait", "must be positive", source="dp-join")
    return join_ranks(args.address, args.ranks, args.wait)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="selftaught", description=__doc__)
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    logs.add_options(ap)
    sub = ap.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("judge", help="judge your own pairs (benchmark schema) with any checkpoint")
    j.add_argument("--model", required=True)
    j.add_argument("--pairs", required=True,
                   help="JSONL with id, instruction, chosen, rejected (optional source, subset)")
    j.add_argument("--out", required=True)
    j.add_argument("--metrics", help="write accuracy/parse rate/position consistency here (JSON)")
    j.add_argument("--unlabelled", dest="labelled", action="store_false",
                   help="chosen/rejected are only 'first'/'second': no accuracy")
    j.add_argument("--mode", choices=list(MODES))
    j.add_argument("--backend", choices=["transformers", "vllm"])
    j.add_argument("--temperature", type=float)
    j.add_argument("--max-new-tokens", type=int)
    j.add_argument("--skip-invalid", action="store_true",
                   help="leave out invalid lines of --pairs (listed, and counted in --metrics) "
                        "instead of stopping")
    j.add_argument("--params")
    j.set_defaults(func=cmd_judge)
    r = sub.add_parser("report", help="table, markdown and plot data of every evaluated iteration")
    r.add_argument("--params", default="params.yaml")
    r.add_argument("--metrics", default="metrics",
                   help="the folder of metrics/iter_<k>.json (dvc.yaml's evaluate outs)")
    r.add_argument("--out", default="reports")
    r.set_defaults(func=cmd_report)
    pr = sub.add_parser("profile", help="print a profile (configs/profiles/*.yaml) as `-S key=value` flags "
                                        "for `dvc exp run`, after validating it against params.yaml")
    pr.add_argument("file")
    pr.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more override on top of the profile (e.g. seed.path=/models/judge)")
    pr.add_argument("--name", help="the experiment's name (default: the profile file's stem)")
    pr.add_argument("--run", action="store_true",
                    help="run `dvc exp run` instead of printing its command line")
    pr.add_argument("--params", default="params.yaml")
    pr.set_defaults(func=cmd_profile, dvc_args=[])
    v = sub.add_parser("verify", help="rebuild iteration K in a fresh clone with an empty DVC cache and "
                                      "compare every output's md5 with the committed dvc.lock "
                                      "(exit 1 on a mismatch)")
    v.add_argument("--iteration", type=int, required=True,
                   help="K: rebuild train@K and its ancestry (0: the seed)")
    v.add_argument("--repo", default=".", help="the repository whose current commit is verified (default: .)")
    v.add_argument("--keep", action="store_true", help="keep the temporary clone, its cache and repro.log")
    v.set_defaults(func=cmd_verify)
    d = sub.add_parser("dp-join", help="on another machine: run vLLM data-parallel ranks for the stages of a "
                                       "machine with SELFTAUGHT_DP_LOCAL below generation.data_parallel_size "
                                       "(SELFTAUGHT_DP_KEY set alike on both)")
    d.add_argument("address", metavar="HOST:PORT", help="SELFTAUGHT_DP_ADDR of the stages' machine")
    d.add_argument("--ranks", type=int, default=1, help="ranks (engines) on this machine")
    d.add_argument("--wait", type=float, default=600.0,
                   help="seconds to wait for the next engine group; none within it ends the command")
    d.set_defaults(func=cmd_dp_join)
    cli_help.document(ap)
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = []
    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "profile" and "--" in argv:  # `profile FILE [options] -- <dvc exp run arguments>`
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    args = ap.parse_args(argv)
    if passthrough:
        args.dvc_args = passthrough
    logs.setup(args.verbose, args.quiet)
    try:
        return args.func(args)
    except (InputError, ParamError, OSError) as e:
        if isinstance(e, OSError):        # a full disk, a path gone: one line, not a traceback
            e = os_error(e)
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
