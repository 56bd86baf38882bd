"""One rank of `DataParallelBackend` (backends/data_parallel.py): a process (one device) holding one vLLM
engine of the data-parallel group, or its part of one with tensor parallelism. The coordinator's first
message names the rank (torchrun's variables), the model and the generation params; the rank starts its
engine, then answers the coordinator's calls until it hangs up.

    python -m selftaught.backends.dp_rank --fd N          a rank the stage started on its own machine
    python -m selftaught.backends.dp_rank --join HOST:PORT --local-rank I --local-size K [--wait S]
                                                          a rank of another machine (SELFTAUGHT_DP_KEY set)

`join_ranks` is `selftaught dp-join`: on another machine, K ranks at a time, a fresh set for every engine
group a stage starts (each backend of each stage is one group), until no stage comes within `wait` seconds.

Tests only: SELFTAUGHT_DP_STANDIN=1 makes the rank a SyntheticBackend (no vLLM; the splitting, ordering,
usage, joining and error paths run as they do with engines)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection

from ..core.config import Generation
from ..core.errors import InputError, ParamError
from .data_parallel import EXIT_GRACE, KEY_ENV, parse_addr, start_rank

STANDIN_ENV = "SELFTAUGHT_DP_STANDIN"
NO_STAGE = 3                # a joining rank's exit status when no stage took it within --wait seconds


def failure(e: Exception) -> tuple:
    """What a rank sends for an exception: bad input or params whole (the stage exits 2 on them, naming the
    key), anything else as its type and message."""
    if isinstance(e, (InputError, ParamError)):
        return "raise", e
    return "error", f"{type(e).__name__}: {e}"


def engine_rank(backend, tensor_parallel_size: int) -> list[int]:
    """[data-parallel rank, size] as this rank's engine was configured (the stand-in: what torchrun's values
    make of them, as vLLM does)."""
    llm = getattr(backend, "llm", None)
    if llm is None:
        t = tensor_parallel_size
        return [int(os.environ["RANK"]) // t, int(os.environ["WORLD_SIZE"]) // t]
    cfg = llm.llm_engine.vllm_config.parallel_config
    return [int(cfg.data_parallel_rank), int(cfg.data_parallel_size)]


def serve(conn: Connection):
    """One rank: start its engine as the coordinator's first message says, then answer its calls until it
    hangs up."""
    from .synthetic import SyntheticBackend
    from .vllm_backend import VLLMBackend

    try:
        _, env, model_dir, spec, max_new_tokens, trust_remote_code = conn.recv()
    except (EOFError, OSError):
        return
    os.environ.update(env)                          # torchrun's variables, read when the engine starts
    gen = Generation.model_validate_json(spec)
    try:
        backend = (SyntheticBackend(model_dir, trust_remote_code) if os.environ.get(STANDIN_ENV) == "1" else
                   VLLMBackend(model_dir, gen, max_new_tokens, trust_remote_code))
    except Exception as e:                          # noqa: BLE001 -- the coordinator raises it
        conn.send(failure(e))
        return
    conn.send(("ok", engine_rank(backend, gen.tensor_parallel_size)))
    while True:
        try:
            method, share, *args = conn.recv()
        except (EOFError, OSError):
            return
        before = backend.usage.snapshot()
        try:
            answers = getattr(backend, method)(share, *args)
        except Exception as e:                      # noqa: BLE001
            conn.send(failure(e))
            return
        after = backend.usage.snapshot()
        conn.send(("ok", (answers, {k: after[k] - before[k] for k in after})))


def connect(addr: str, key: bytes, wait: float) -> Connection | None:
    """A connection to the stage at `addr`, retried until one listens; None after `wait` seconds."""
    address, deadline = parse_addr(addr, "--join"), time.monotonic() + wait
    while True:
        try:
            return Client(address, authkey=key)
        except (ConnectionRefusedError, ConnectionResetError, EOFError):   # none listens yet, or closing
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)


def shared_key() -> bytes:
    if not os.environ.get(KEY_ENV):
        raise ParamError(KEY_ENV, "the stage's shared secret: set the same value here and where the stage "
                                  "runs", source="environment")
    return os.environ[KEY_ENV].encode()


def join_ranks(addr: str, ranks: int, wait: float) -> int:
    """`selftaught dp-join`: run `ranks` ranks joining the stage at `addr`, a fresh set per engine group,
    until none is taken within `wait` seconds (exit 0) or a rank fails (exit 1)."""
    parse_addr(addr, "HOST:PORT")
    shared_key()
    groups = 0
    while True:
        procs = [start_rank(["--join", addr, "--local-rank", str(i), "--local-size", str(ranks), "--wait",
                             str(wait)]) for i in range(ranks)]
        codes = [p.wait() for p in procs]
        if any(c not in (0, NO_STAGE) for c in codes):
            print(f"dp-join: a rank failed (exit statuses {codes}; its log is above)", file=sys.stderr)
            return 1
        if all(c == NO_STAGE for c in codes):
            print(f"dp-join: no stage took a rank for {wait:.0f} s; engine groups served: {groups}",
                  file=sys.stderr)
            return 0
        groups += 1
        print(f"dp-join: engine group {groups} done", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m selftaught.backends.dp_rank", description=__doc__)
    ap.add_argument("--fd", type=int, help="the socket pair's end of a rank the stage started")
    ap.add_argument("--join", metavar="HOST:PORT", help="the stage's address (SELFTAUGHT_DP_ADDR there)")
    ap.add_argument("--local-rank", type=int, default=0)
    ap.add_argument("--local-size", type=int, default=1)
    ap.add_argument("--wait", type=float, default=600.0, help="seconds to wait for a stage")
    args = ap.parse_args(argv)
    if args.fd is not None:
        serve(Connection(args.fd))
        return 0
    try:
        conn = connect(args.join, shared_key(), args.wait)
    except ParamError as e:
        print(f"dp_rank: {e}", file=sys.stderr)
        return 2
    except AuthenticationError as e:
        print(f"dp_rank: {args.join} refused this rank ({e}): set the same {KEY_ENV} on both machines",
              file=sys.stderr)
        return 2
    if conn is None:
        return NO_STAGE
    conn.send(("join", socket.gethostname(), args.local_rank, args.local_size))
    serve(conn)
    return 0


if __name__ == "__main__":
    code = main()
    # a normal exit, so that vLLM's exit handlers free the engine's shared memory; cut short if it hangs
    watchdog = threading.Timer(EXIT_GRACE, os._exit, [code])
    watchdog.daemon = True
    watchdog.start()
    sys.exit(code)
