"""The Python API: a trained judge as an object.

    from selftaught import Judge

    judge = Judge.load("models/iter_2")                       # or Judge.from_repo(2, rev="my-experiment")
    v = judge.compare("Name a prime number.", "7", "8")       # both orders, the checkpoint's verdict mode
    v.winner                                                  # "a", "b" or None (the orders disagree)
    result = judge.judge(records)                             # [{id, instruction, chosen, rejected}, ...]

A checkpoint of the pipeline carries its judge config (judge_config.py: prompt template, verdict format,
mode, calibration), so no params.yaml is needed; `params` (a params file or a core.config.Params) supplies
what the config does not (batch size, dtype, token budget), and defaults to core/config.py's defaults.
`Judge.judge` is the code path of `selftaught judge` (cli.py calls it), which is the evaluate stage's
(benchmarking.evaluate_split)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import judge_config
from .core import config
from .core.schemas import Pair


@dataclass(frozen=True)
class Verdict:
    """The judgment of one pair (a, b) in both orders: `winner` is "a" or "b" when both orders pick the same
    response, else None; `orders` are the two order's records (a first, then b first): verdict "A"/"B" (or
    None: unparseable), the judgment text and margin."""
    winner: str | None
    orders: tuple
    mode: str

    @property
    def consistent(self) -> bool:
        return self.winner is not None


@dataclass(frozen=True)
class Result:
    """The records `selftaught judge` writes (one per pair and order) and the metrics of its mode (labelled
    pairs: accuracy and the rest; unlabelled: parse rate and position consistency)."""
    records: list
    metrics: dict
    mode: str


def _pair(record, index: int) -> Pair:
    p = record if isinstance(record, Pair) else Pair.from_dict(
        {"id": str(index), **record} if "id" not in record else record, line=index + 1)
    if p.benchmark:
        return p
    return type(p)(**{**p.to_dict(), "benchmark": "pairs", "subset": p.subset or "all"})


class Judge:
    """A judge checkpoint with its settings; models load on first use, once per dtype."""

    def __init__(self, model_dir, params: config.Params, cfg: dict | None = None):
        self.model_dir, self.params, self.config = Path(model_dir), params, cfg
        self._backends = {}

    @classmethod
    def load(cls, path, params=None) -> "Judge":
        """The judge in checkpoint directory `path`. `params`: a params file, a core.config.Params, or None
        (the defaults); the checkpoint's judge config overrides the keys it carries."""
        from .core.safety import check_model_dir

        if not isinstance(params, config.Params):
            params = config.Params() if params is None else config.load(params)
        check_model_dir(path, "model")
        params, cfg = judge_config.apply(params, path)
        return cls(path, params, cfg)

    @classmethod
    def from_repo(cls, iteration: int, rev=None, repo=".", out=None, params=None) -> "Judge":
        """The judge of iteration `iteration` (0: the seed) as committed at git revision `rev` (a commit,
        branch, tag or experiment name; None: the workspace) of the DVC repository `repo` (a path or git
        URL), fetched through DVC (its cache, or the repository's remote) into `out` (default: a new
        temporary folder)."""
        path = fetch(iteration, rev, repo, out)
        return cls.load(path, params)

    @property
    def mode(self) -> str:
        """The default verdict mode: the pipeline's judging mode from the config, else evaluate.modes[0]."""
        return judge_config.default_mode(self.params, self.config)

    def _backends_for(self, mode: str):
        if mode not in self._backends:
            from .backends import make_judging_backends

            p = self.params
            self._backends[mode] = make_judging_backends(self.model_dir, p.generation, [mode],
                                                         p.evaluate.likelihood_dtype, p.trust_remote_code)
        return self._backends[mode]

    def judge(self, records, mode=None, labelled=True, temperature=None, max_new_tokens=None,
              calibrate=None) -> Result:
        """Judge every pair of `records` (dicts with instruction, chosen, rejected and optional id, source,
        subset; or Pairs) in both orders, greedily unless `temperature` says otherwise. labelled=False:
        chosen/rejected mean only first/second, and no accuracy is measured. `calibrate` (default: the
        config's) subtracts, in constrained mode, the mean A-vs-B margin of the pairs judged together."""
        from .benchmarking import EvalSettings, evaluate_split
        from .evaluation import summarise
        from .prompts import judge_prompt

        mode = mode or self.mode
        pairs = [_pair(r, i) for i, r in enumerate(records)]
        backend, lik = self._backends_for(mode)
        params = self.params
        if calibrate is not None:
            params = params.model_copy(update={"evaluate": params.evaluate.model_copy(
                update={"calibrate": calibrate})})
        settings = EvalSettings.from_params(params, [mode], max_new_tokens, temperature, vote=False)
        js, metrics, _ = evaluate_split(backend, lik, judge_prompt(params, backend), pairs, settings,
                                        desc="judge")
        out = []
        for j in js:
            rec = {**j.to_dict(), "first_is": "A" if j.order == 0 else "B"}
            if labelled:
                rec["correct"] = j.correct
            out.append(rec)
        m = metrics[mode] if labelled else summarise(js, {p.id: p for p in pairs}, labelled=False)
        return Result(out, m, mode)

    def compare(self, instruction: str, a: str, b: str, mode=None) -> Verdict:
        """Which of the responses a and b to `instruction` is better, judged in both orders. Uncalibrated:
        a single pair's mean margin is its own, so calibration would cancel its verdict (`judge` calibrates
        over a batch)."""
        r = self.judge([{"id": "0", "instruction": instruction, "chosen": a, "rejected": b}], mode,
                       labelled=False, calibrate=False)
        by_order = {rec["order"]: rec for rec in r.records}
        picks = [_pick(o, by_order[o].get("verdict")) for o in (0, 1)]
        return Verdict(picks[0] if picks[0] is not None and picks[0] == picks[1] else None,
                       (by_order[0], by_order[1]), r.mode)


def _pick(order: int, verdict) -> str | None:
    """The response ("a" or "b") a verdict picks: order 0 shows a as A, order 1 shows b as A."""
    if verdict not in ("A", "B"):
        return None
    return "a" if (verdict == "A") == (order == 0) else "b"


def fetch(iteration: int, rev=None, repo=".", out=None) -> Path:
    """models/iter_<iteration> of `repo` at `rev` (an experiment name is resolved in a local repository),
    copied into `out` through DVC's file system; returns the checkpoint's directory."""
    from dvc.api import DVCFileSystem

    if rev is not None and Path(repo).is_dir():
        from dvc.repo import Repo
        from dvc.scm import resolve_rev

        with Repo(str(repo)) as r:
            rev = resolve_rev(r.scm, rev)
    dest = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="selftaught-judge-"))
    dest = dest / f"iter_{iteration}"
    fs = DVCFileSystem(str(repo), rev=rev)
    fs.get(f"models/iter_{iteration}", str(dest), recursive=True)
    return dest
