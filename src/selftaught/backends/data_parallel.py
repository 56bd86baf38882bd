"""`DataParallelBackend`: a stage's requests split over `generation.data_parallel_size` vLLM engines, with
vLLM's own data parallelism, on the stage's machine or across several.

vLLM runs data parallelism for a dense model one way offline: SPMD, torchrun-style. Every rank is a process
(one device) holding its part of an engine created with `data_parallel_size=N` and
`distributed_executor_backend="external_launcher"`; the ranks are named by torchrun's variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), N x tensor_parallel_size (T) of them, engine e being
ranks e*T .. e*T+T-1, which all take the same calls. Across machines MASTER_ADDR is the first machine's, as
with torchrun. vLLM's other ways (VLLM_DP_* or `data_parallel_rank`) are refused for dense models
(docs/scaling.md, "Data parallelism on the CPU build"). The engines are collective: each generate call
all-reduces "anything left?" every step, an engine that is done steps dummy batches until every engine is,
so every rank must take part in every call.

Here the stage process is the coordinator and holds no engine. Ranks 0..L-1 are processes it starts (`python
-m selftaught.backends.dp_rank`, connected by a socket pair); with SELFTAUGHT_DP_LOCAL=L below N x T, the
other ranks are processes on other machines that connect to SELFTAUGHT_DP_ADDR (`selftaught dp-join`),
authenticated by SELFTAUGHT_DP_KEY (multiprocessing's HMAC challenge: nothing is unpickled from a peer
without the key). Where ranks run is a property of the machines, not of the outputs, so it is environment,
not params. Every backend call sends engine e the requests e, e+N, e+2N, ... and puts the first rank's
answers back in request order; an engine whose share is empty gets a copy of the first request and its
answer is dropped, so every rank takes part in every call. A rank that dies is an end of file on its
connection: the call fails naming it, no hang. The stage's code, resume chunks and writes are those of one
process, untouched.

Bytes: in float32 two engines gave the texts of one engine byte for byte; in bfloat16 they did not (an
engine batches other requests together).

A rank is backends/dp_rank.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass
from multiprocessing import AuthenticationError, Pipe
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge, wait
from pathlib import Path

from ..core.config import Generation
from ..core.errors import ParamError
from .base import GenerationBackend
from .loading import adapter_base, is_adapter

LOCAL_ENV, ADDR_ENV, KEY_ENV, WAIT_ENV = ("SELFTAUGHT_DP_LOCAL", "SELFTAUGHT_DP_ADDR", "SELFTAUGHT_DP_KEY",
                                          "SELFTAUGHT_DP_WAIT")
EXIT_GRACE = 60.0       # seconds a rank has to exit normally once the stage hangs up (then it ends itself)


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


def parse_addr(text: str, name: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ParamError(name, f"HOST:PORT, an address of the stage's machine that the other machines reach "
                               f"(got {text!r})", source="environment")
    return host, int(port)


@dataclass(frozen=True)
class Placement:
    """Where the ranks run: 0..local-1 on this machine, the rest join at `addr` with `key` within `wait` s."""
    local: int
    addr: tuple[str, int] | None = None
    key: bytes | None = None
    wait: float = 600.0


def placement(size: int, environ=os.environ) -> Placement:
    """The placement of `size` ranks (processes: data_parallel_size x tensor_parallel_size) from the
    environment (all on this machine unless SELFTAUGHT_DP_LOCAL says fewer); a bad value raises naming the
    variable."""
    text = environ.get(LOCAL_ENV, str(size))
    if not text.isdigit() or not 1 <= int(text) <= size:
        raise ParamError(LOCAL_ENV, f"the ranks (processes, one per device) this machine starts: 1 to "
                                    f"generation.data_parallel_size x tensor_parallel_size ({size}); rank 0 "
                                    f"holds the group's rendezvous (got {text!r})", source="environment")
    local = int(text)
    if local == size:
        return Placement(local)
    if not environ.get(ADDR_ENV):
        raise ParamError(ADDR_ENV, f"{size - local} ranks run on other machines ({LOCAL_ENV}={local} of "
                                   f"{size}): set HOST:PORT where they join", source="environment")
    addr = parse_addr(environ[ADDR_ENV], ADDR_ENV)
    if not environ.get(KEY_ENV):
        raise ParamError(KEY_ENV, "ranks on other machines need a shared secret: set the same "
                                  f"{KEY_ENV} here and where `selftaught dp-join` runs", source="environment")
    try:
        wait_s = float(environ.get(WAIT_ENV, "600"))
    except ValueError:
        wait_s = -1.0
    if not wait_s > 0:
        raise ParamError(WAIT_ENV, f"seconds to wait for the other machines' ranks, > 0 (got "
                                   f"{environ[WAIT_ENV]!r})", source="environment")
    return Placement(local, addr, environ[KEY_ENV].encode(), wait_s)


def accept_ranks(place: Placement, n: int) -> list[tuple[Connection, str, int, int]]:
    """n ranks of other machines joined at place.addr within place.wait seconds, each (connection, host,
    local rank, ranks on its machine), in (host, local rank) order; a connection without the key is
    refused and logged."""
    got = []
    deadline = time.monotonic() + place.wait
    with socket.create_server(place.addr, reuse_port=False) as server:
        while len(got) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                for conn, *_ in got:
                    conn.close()
                joined = ", ".join(f"{h} (local rank {r})" for _, h, r, _ in got) or "none"
                raise RuntimeError(
                    f"vLLM data parallel: waited {place.wait:.0f} s ({WAIT_ENV}) at {place.addr[0]}:"
                    f"{place.addr[1]} for {n} ranks of other machines; joined: {joined}. Start `selftaught "
                    f"dp-join {place.addr[0]}:{place.addr[1]} --ranks K` there, with the same {KEY_ENV}")
            server.settimeout(left)
            try:
                sock, peer = server.accept()
            except TimeoutError:
                continue
            sock.settimeout(None)
            conn = Connection(sock.detach())
            try:
                deliver_challenge(conn, place.key)
                answer_challenge(conn, place.key)
                kind, host, local_rank, local_size = conn.recv()
                assert kind == "join"
            except (AuthenticationError, EOFError, OSError, ValueError, TypeError, AssertionError) as e:
                print(f"data parallel: refused a connection from {peer[0]} ({type(e).__name__}: wrong "
                      f"{KEY_ENV}, or not a rank)", file=sys.stderr, flush=True)
                conn.close()
                continue
            got.append((conn, str(host), int(local_rank), int(local_size)))
    return sorted(got, key=lambda g: g[1:3])


def start_rank(args: list[str], **popen) -> subprocess.Popen:
    """A rank process, `python -m selftaught.backends.dp_rank ARGS`, running this checkout's src/ (the code
    of the process that starts it)."""
    src = str(Path(__file__).resolve().parents[2])
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, "-m", "selftaught.backends.dp_rank", *args], env=env, **popen)


def rank_env(rank: int, size: int, local_rank: int, local_size: int, master: tuple[str, int]) -> dict:
    """torchrun's variables for one rank, which vLLM's external_launcher reads."""
    return dict(RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(size),
                LOCAL_WORLD_SIZE=str(local_size), MASTER_ADDR=master[0], MASTER_PORT=str(master[1]))


class DataParallelBackend(GenerationBackend):
    name = "vllm"

    def __init__(self, model_dir, gen: Generation, max_new_tokens=1024, trust_remote_code=False):
        super().__init__()
        from transformers import AutoTokenizer

        self.engines, self.tp = int(gen.data_parallel_size), int(gen.tensor_parallel_size)
        self.size = self.engines * self.tp          # ranks: engine e is ranks e*tp .. e*tp+tp-1
        place = placement(self.size)
        base = adapter_base(model_dir) if is_adapter(model_dir) else model_dir
        self.tok = AutoTokenizer.from_pretrained(str(base), trust_remote_code=trust_remote_code)
        self.conns, self.procs, self.hosts = [], [], []
        self._finalizer = weakref.finalize(self, _stop, self.procs, self.conns)
        remote = accept_ranks(place, self.size - place.local) if place.local < self.size else []
        master = (place.addr[0] if remote else "127.0.0.1", free_port())
        starts = []
        for r in range(place.local):
            mine, theirs = Pipe()
            self.procs.append(start_rank(["--fd", str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                         start_new_session=True))
            theirs.close()                                    # the rank's end lives in the rank only
            self.conns.append(mine)
            self.hosts.append("this machine")
            starts.append(rank_env(r, self.size, r, place.local, master))
        for i, (conn, host, local_rank, local_size) in enumerate(remote):
            self.conns.append(conn)
            self.hosts.append(host)
            starts.append(rank_env(place.local + i, self.size, local_rank, local_size, master))
        spec = gen.model_dump_json()
        for r, start in enumerate(starts):
            self._send(r, ("start", start, str(model_dir), spec, int(max_new_tokens), trust_remote_code))
        self.engine_ranks = self._gather()      # each rank's engine: [DP rank, DP size], or its start error
        if self.engine_ranks != [[r // self.tp, self.engines] for r in range(self.size)]:
            self._fail(0, f"vLLM did not form one data-parallel group of {self.engines} engines x "
                          f"{self.tp} ranks: the ranks report [engine, engines] {self.engine_ranks}")
        where = f", ranks {place.local}.. on {sorted(set(self.hosts[place.local:]))}" if remote else ""
        print(f"data parallel: {self.engines} vLLM engines of {self.tp} ranks, one group, [engine, engines] "
              f"{self.engine_ranks} ready{where}", file=sys.stderr, flush=True)

    def _lost(self, rank: int) -> str:
        host = self.hosts[rank]
        return ("exited (its log is above)" if host == "this machine" else
                f"exited or lost (its log is on {host})")

    def _send(self, rank: int, message):
        try:
            self.conns[rank].send(message)
        except OSError:                       # the rank is gone
            self._fail(rank, self._lost(rank))

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
                except (EOFError, OSError):
                    status, value = "error", self._lost(r)
                if status != "ok":
                    self._fail(r, value)
                got[r] = value
        return [got[r] for r in range(self.size)]

    def _fail(self, rank: int, what):
        """End every rank at once (the others may be waiting in a collective step for the failed one), then
        raise: bad input or params as one process raises them, else the rank's error."""
        _kill(self.procs)
        self.close()
        if isinstance(what, Exception):
            raise what
        raise RuntimeError(f"vLLM data-parallel rank {rank} of {self.size}: {what}")

    def _call(self, method: str, requests, *extra):
        """Each engine runs `method` on its share (every rank of an engine on the same share, as vLLM's
        external launcher needs); answers in request order from each engine's first rank, usage summed over
        the engines with a share (an engine without one answers a copy of request 0, dropped with its
        usage)."""
        idx = shares(len(requests), self.engines)
        for r in range(self.size):
            mine = idx[r // self.tp] or [0]
            args = [[x[i] for i in mine] if isinstance(x, list) else x for x in extra]
            self._send(r, (method, [requests[i] for i in mine], *args))
        parts = []
        for (answers, usage), share in zip(self._gather()[::self.tp], idx):
            parts.append(answers)
            for k, v in usage.items() if share else ():
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


def _stop(procs, conns, grace=EXIT_GRACE + 5):
    """End every rank: hang up on each, which makes it exit (a rank of another machine too), and give this
    machine's ranks `grace` seconds to exit normally, so that vLLM frees its shared memory (its CPU build
    leaves the /dev/shm segments of a killed tensor-parallel rank behind, and the next group on the machine
    cannot create its own); then kill what is left, process groups whole (vLLM's helpers too)."""
    for conn in conns:
        conn.close()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    _kill(procs)


def _kill(procs):
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
