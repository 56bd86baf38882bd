"""One rank of `DataParallelBackend` (backends/data_parallel.py): a process started by the stage with
torchrun's variables set, holding one vLLM engine of the data-parallel group; it answers the stage's calls
over the socket pair it was given until the stage hangs up.

Tests only: SELFTAUGHT_DP_STANDIN=1 makes the rank a SyntheticBackend (no vLLM; the splitting, ordering,
usage and error paths run as they do with engines)."""

from __future__ import annotations

import os
import sys
from multiprocessing.connection import Connection

from ..core.config import Generation
from ..core.errors import InputError, ParamError

STANDIN_ENV = "SELFTAUGHT_DP_STANDIN"


def failure(e: Exception) -> tuple:
    """What a rank sends for an exception: bad input or params whole (the stage exits 2 on them, naming the
    key), anything else as its type and message."""
    if isinstance(e, (InputError, ParamError)):
        return "raise", e
    return "error", f"{type(e).__name__}: {e}"


def engine_rank(backend) -> list[int]:
    """[data-parallel rank, size] as this rank's engine was configured (the stand-in: torchrun's values)."""
    llm = getattr(backend, "llm", None)
    if llm is None:
        return [int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])]
    cfg = llm.llm_engine.vllm_config.parallel_config
    return [int(cfg.data_parallel_rank), int(cfg.data_parallel_size)]


def serve(fd: int, model_dir: str, spec: str, max_new_tokens: int, trust_remote_code: bool):
    """One rank: start its engine, then answer the coordinator's calls until it hangs up."""
    from .synthetic import SyntheticBackend
    from .vllm_backend import VLLMBackend

    conn = Connection(fd)
    try:
        backend = (SyntheticBackend(model_dir, trust_remote_code) if os.environ.get(STANDIN_ENV) == "1" else
                   VLLMBackend(model_dir, Generation.model_validate_json(spec), max_new_tokens,
                               trust_remote_code))
    except Exception as e:                          # noqa: BLE001 -- the coordinator raises it
        conn.send(failure(e))
        return
    conn.send(("ok", engine_rank(backend)))
    while True:
        try:
            method, share, *args, dummy = conn.recv()
        except EOFError:
            return
        before = backend.usage.snapshot()
        try:
            answers = getattr(backend, method)(share, *args)
        except Exception as e:                      # noqa: BLE001
            conn.send(failure(e))
            return
        after = backend.usage.snapshot()
        usage = {} if dummy else {k: after[k] - before[k] for k in after}
        conn.send(("ok", ([] if dummy else answers, usage)))


if __name__ == "__main__":
    fd, model, spec, max_new, trc = sys.argv[1:6]
    serve(int(fd), model, spec, int(max_new), trc == "1")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)                                     # vLLM's data-parallel engine can hang on shutdown
