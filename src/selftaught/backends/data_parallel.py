"""`DataParallelBackend`: a stage's requests split over `generation.data_parallel_size` vLLM engines, with
vLLM's own data parallelism.

vLLM runs data parallelism for a dense model one way offline: one process per rank, each holding its own
engine created with `data_parallel_size=N` and `distributed_executor_backend="external_launcher"`, the ranks
named by torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Its other ways (VLLM_DP_* or
`data_parallel_rank`) are refused for dense models (docs/scaling.md, "Data parallelism on the CPU build").
The ranks are collective: each generate call all-reduces "anything left?" every step, a rank that is done
steps dummy batches until every rank is, so every rank must take part in every call.

Here the stage process is the coordinator and holds no engine. It starts N rank processes (`python -m
selftaught.backends.dp_rank`), each a `VLLMBackend` on its rank's engine, connected to it by a socket
pair (a rank that dies is an end of file, not a hang). Every backend call sends rank r the requests r, r+N,
r+2N, ... and puts the answers back in request order; a rank whose share is empty gets a copy of the first
request and its answer is dropped, so every rank takes part in every call. The stage's code, resume chunks
and writes are those of one process, untouched.

Bytes: in float32 two ranks gave the texts of one engine byte for byte; in bfloat16 they did not (a rank
batches other requests together). One machine only: the ranks are subprocesses of the stage.

A rank is backends/dp_rank.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import weakref
from multiprocessing import Pipe
from multiprocessing.connection import wait
from pathlib import Path

from ..core.config import Generation
from ..core.errors import ParamError
from .base import GenerationBackend
from .loading import adapter_base, is_adapter


def shares(n: int, size: int) -> list[list[int]]:
    """The request indices of each rank: rank r takes r, r+size, r+2*size, ..."""
    return [list(range(r, n, size)) for r in range(size)]


def merge(parts: list[list], idx: list[list[int]], n: int) -> list:
    """The ranks' answers back in request order (a rank's answers beyond its share are dropped)."""
    out = [None] * n
    for got, where in zip(parts, idx):
        for i, value in zip(where, got):
            out[i] = value
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, size: int, master_port: int) -> dict:
    """torchrun's variables for one rank on this machine, which vLLM's external_launcher reads."""
    return dict(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size), LOCAL_WORLD_SIZE=str(size),
                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(master_port))


class DataParallelBackend(GenerationBackend):
    name = "vllm"

    def __init__(self, model_dir, gen: Generation, max_new_tokens=1024, trust_remote_code=False):
        super().__init__()
        from transformers import AutoTokenizer

        self.size = int(gen.data_parallel_size)
        if gen.backend != "vllm" or self.size < 2:
            raise ParamError("generation.data_parallel_size",
                             f"data parallelism runs vLLM engines: needs generation.backend vllm and a size "
                             f"of 2 or more (got backend {gen.backend!r}, size {self.size})")
        base = adapter_base(model_dir) if is_adapter(model_dir) else model_dir
        self.tok = AutoTokenizer.from_pretrained(str(base), trust_remote_code=trust_remote_code)
        src = str(Path(__file__).resolve().parents[2])      # this checkout's src/: the ranks run this code
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])}
        port, spec = free_port(), gen.model_dump_json()
        self.conns, self.procs = [], []
        self._finalizer = weakref.finalize(self, _stop, self.procs)
        for r in range(self.size):
            mine, theirs = Pipe()
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "selftaught.backends.dp_rank", str(theirs.fileno()),
                 str(model_dir), spec, str(int(max_new_tokens)), "1" if trust_remote_code else "0"],
                env={**env, **rank_env(r, self.size, port)}, pass_fds=[theirs.fileno()],
                start_new_session=True))
            theirs.close()                                    # the rank's end lives in the rank only
            self.conns.append(mine)
        self.engine_ranks = self._gather()      # each rank's engine: [DP rank, DP size], or its start error
        if self.engine_ranks != [[r, self.size] for r in range(self.size)]:
            self._fail(0, f"vLLM did not form one data-parallel group of {self.size}: the engines report "
                          f"[rank, size] {self.engine_ranks}")
        print(f"data parallel: {self.size} vLLM engines, one group, ranks {self.engine_ranks} ready",
              file=sys.stderr, flush=True)

    def _gather(self) -> list:
        """One answer from every rank, taken as they come: the first error (or a rank that exited) ends all
        ranks and raises, so a rank left waiting on the others' collective step never hangs the stage."""
        got, pending = {}, dict(enumerate(self.conns))
        while pending:
            for conn in wait(list(pending.values())):
                r = next(k for k, c in pending.items() if c is conn)
                del pending[r]
                try:
                    status, value = conn.recv()
                except EOFError:
                    status, value = "error", "exited (its log is above)"
                if status != "ok":
                    self._fail(r, value)
                got[r] = value
        return [got[r] for r in range(self.size)]

    def _fail(self, rank: int, what):
        """End every rank, then raise: bad input or params as one process raises them, else the rank's
        error."""
        self.close()
        if isinstance(what, Exception):
            raise what
        raise RuntimeError(f"vLLM data-parallel rank {rank} of {self.size}: {what}")

    def _call(self, method: str, requests, *extra):
        """Each rank runs `method` on its share; answers in request order, usage summed over ranks."""
        idx = shares(len(requests), self.size)
        for r, conn in enumerate(self.conns):
            mine = idx[r] or [0]              # an empty share: a copy of request 0, answer dropped
            args = [[x[i] for i in mine] if isinstance(x, list) else x for x in extra]
            try:
                conn.send((method, [requests[i] for i in mine], *args, not idx[r]))
            except OSError:                   # the rank is gone
                self._fail(r, "exited (its log is above)")
        parts = []
        for answers, usage in self._gather():
            parts.append(answers)
            for k, v in usage.items():
                setattr(self.usage, k, getattr(self.usage, k) + v)
        return merge(parts, idx, len(requests))

    def generate(self, requests, sampling, desc="generate"):
        return self._call("generate", list(requests), sampling) if requests else []

    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts"):
        return self._call("next_token_margins", list(requests), tuple(options)) if requests else []

    def continuation_logprobs(self, requests, continuations, desc="score responses"):
        return (self._call("continuation_logprobs", list(requests), list(continuations))
                if requests else [])

    def close(self):
        self._finalizer()


def _stop(procs):
    """End every rank: its process group (vLLM's helpers too). A data-parallel engine can hang on shutdown,
    and its answers are in hand."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()
