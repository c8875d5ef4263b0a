"""Shared plumbing for the benchmarks: an in-process sandbox on a scaled clock, CPU accounting, tables.

Both simulators and both clients share one `BenchClock` (a scaled clock), so QBO's limits (500 requests/min,
40 batch calls/min, 10 in flight) are enforced by the simulator — and honoured by our client throttle — in
simulated time that runs `scale` times faster than real time. The clock stands still while a simulator
handles a request; server time is a fixed simulated `latency` per request instead. Our own CPU is real
time, so it is magnified by `scale` in the simulated figures: a pessimistic choice, stated in every report.

CPU split: every request to the sandbox is timed with `time.thread_time()` inside the transport, and that
simulator CPU is subtracted from the process CPU (`time.process_time()`) to give the CPU of our code.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/x.py` from a checkout without installing
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from cwqbo import http  # noqa: E402
from cwqbo.clock import Clock  # noqa: E402
from cwqbo.connectwise.client import CWClient  # noqa: E402
from cwqbo.settings.prefs import Filters, Prefs  # noqa: E402
from cwqbo.quickbooks.client import QBOClient  # noqa: E402
from cwqbo.sandbox import server as sv  # noqa: E402
from cwqbo.sandbox.bridge import in_process_transport  # noqa: E402
from cwqbo.sandbox.quickbooks.simulator import BATCH_LIMIT_PER_MIN, DirectTokens, RATE_LIMIT_PER_MIN  # noqa: E402
from cwqbo.state.store import Store  # noqa: E402

START = 1_795_500_000.0  # 2026-11-24, after the generated invoices (like the sync tests)
BATCH_ITEMS = 30


class BenchClock(Clock):
    """A scaled clock that stands still while the simulators work.

    Server time is modelled by the fixed per-request `latency` instead, so the simulators' own CPU (they
    are slower than Intuit's servers) never counts against our throughput; our CPU is scaled like any other
    real time. One request at a time is assumed inside the simulators (the sync engine is sequential).
    """

    def __init__(self, scale: float, start: float) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._real0 = time.monotonic()
        self._sim0 = start
        self._lock = threading.Lock()
        self._excluded = 0.0
        self._depth = 0
        self._entered = 0.0

    def _effective(self, t: float) -> float:
        paused = t - self._entered if self._depth else 0.0
        return t - self._real0 - self._excluded - paused

    def now(self) -> float:
        with self._lock:
            return self._sim0 + self._effective(time.monotonic()) * self.scale

    def monotonic(self) -> float:
        return self.now()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._entered = time.monotonic()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._excluded += time.monotonic() - self._entered


@dataclass
class SimMeter:
    """Counts requests and CPU spent inside the simulators, so the report can subtract it."""

    cpu: float = 0.0
    qbo_requests: int = 0
    cw_requests: int = 0
    batch_requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # CPU of the cyclic collections that ran in our code (not inside a simulator), per thread: each thread writes
    # only its own entry, so the gc callback takes no lock (a collection can start while any lock is held).
    _gc_own: dict[int, float] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)

    def simulating(self) -> AbstractContextManager[None]:
        """Mark this thread as inside a simulator while the body runs (its collections are the simulator's)."""
        return _marked(self._local)

    def gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        local = self._local
        if getattr(local, "inside", 0):
            return
        if phase == "start":
            local.gc0 = time.thread_time()
        elif hasattr(local, "gc0"):
            tid = threading.get_ident()
            self._gc_own[tid] = self._gc_own.get(tid, 0.0) + time.thread_time() - local.gc0
            del local.gc0

    @property
    def gc_own(self) -> float:
        return sum(list(self._gc_own.values()))

    def add(self, path: str, cpu: float) -> None:
        with self._lock:
            self.cpu += cpu
            if path.startswith("/v3/"):
                self.qbo_requests += 1
                if path.rstrip("/").endswith("/batch"):
                    self.batch_requests += 1
            elif "/apis/3.0/" in path:
                self.cw_requests += 1


@contextmanager
def _marked(local: threading.local) -> Iterator[None]:
    local.inside = getattr(local, "inside", 0) + 1
    try:
        yield
    finally:
        local.inside -= 1


@dataclass
class World:
    """A sandbox with `n` invoices, a fresh store, and clients wired to it in-process."""

    sandbox: sv.Sandbox
    store: Store
    clock: BenchClock
    meter: SimMeter
    qbo: QBOClient
    cw: CWClient

    def close(self) -> None:
        self.store.close()
        http.set_transport_override(None)
        if self.meter.gc_callback in gc.callbacks:
            gc.callbacks.remove(self.meter.gc_callback)


def metered_handler(sandbox: sv.Sandbox, meter: SimMeter, latency: float,
                    clock: BenchClock) -> Callable[[httpx.Request], httpx.Response]:
    """The sandbox's request handler as the benches call it: the simulators run with the clock paused and their
    CPU metered, then each API request costs
    `latency` simulated seconds of server + network time (slept, not CPU)."""
    real_latency = latency / clock.scale

    def handle(request: httpx.Request) -> httpx.Response:
        t0 = time.thread_time()
        try:
            with clock.paused(), meter.simulating():
                return sandbox.handle(request)
        finally:
            meter.add(request.url.path, time.thread_time() - t0)
            if real_latency > 0 and not request.url.path.startswith("/_sandbox/"):
                time.sleep(real_latency)

    return handle


def metered_transport(sandbox: sv.Sandbox, meter: SimMeter, latency: float, clock: BenchClock) -> httpx.MockTransport:
    """In-process transport over `metered_handler` (what our clients use)."""
    return in_process_transport(metered_handler(sandbox, meter, latency, clock))


def compile_package() -> None:
    """Byte-compile cwqbo as `pip install` does, before timing fresh `python -m cwqbo` processes: an interpreter
    run with PYTHONDONTWRITEBYTECODE (as some sandboxes are) would otherwise recompile every module changed since
    the last compile on each start, which no installed copy does."""
    import compileall

    import cwqbo

    compileall.compile_dir(str(Path(cwqbo.__file__).resolve().parent), quiet=1)


def make_world(n: int, db_path: Path, *, scale: float, latency: float, seed: int = 1) -> World:
    clock = BenchClock(scale, start=START)
    sandbox = sv.Sandbox(seed=seed, invoices=n, clock=clock)
    meter = SimMeter()
    http.set_transport_override(metered_transport(sandbox, meter, latency, clock))
    store = Store.open(db_path)
    qbo = QBOClient("http://127.0.0.1:9", sv.QBO_REALM_ID, DirectTokens(sandbox.qbo), clock=clock)
    cw = CWClient(site="127.0.0.1:9", company_id=sv.CW_COMPANY, public_key=sv.CW_PUBLIC_KEY,
                  private_key=sv.CW_PRIVATE_KEY, client_id=sv.CW_CLIENT_ID, codebase=sv.CW_CODEBASE,
                  scheme="http", clock=clock)
    gc.callbacks.append(meter.gc_callback)  # last: a world that failed to build leaves no callback behind
    return World(sandbox, store, clock, meter, qbo, cw)


def default_prefs() -> tuple[Prefs, Filters]:
    return Prefs(), Filters()


@dataclass
class Sample:
    """What one measured phase cost: simulated seconds, process and simulator CPU, peak memory."""

    sim_seconds: float = 0.0
    real_seconds: float = 0.0
    cpu: float = 0.0
    sim_cpu: float = 0.0
    qbo_requests: int = 0
    cw_requests: int = 0
    batch_requests: int = 0
    gc_own: float = 0.0  # CPU of cyclic collections that ran in our code (part of own_cpu)
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0

    @property
    def own_cpu(self) -> float:
        return max(0.0, self.cpu - self.sim_cpu)


def rss_peak_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def rss_now_mb() -> float:
    try:
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except OSError:  # not Linux: fall back to the peak
        return rss_peak_mb()


@contextmanager
def measure(world: World) -> Iterator[Sample]:
    """Measure the body: simulated time from the shared clock, CPU split between us and the simulators."""
    s = Sample(rss_before_mb=rss_now_mb())
    m = world.meter
    cpu0, sim0, q0, c0, b0 = time.process_time(), m.cpu, m.qbo_requests, m.cw_requests, m.batch_requests
    gc0 = m.gc_own
    t0, r0 = world.clock.now(), time.perf_counter()
    yield s
    s.sim_seconds = world.clock.now() - t0
    s.real_seconds = time.perf_counter() - r0
    s.cpu = time.process_time() - cpu0
    s.sim_cpu = m.cpu - sim0
    s.gc_own = m.gc_own - gc0
    s.qbo_requests, s.cw_requests, s.batch_requests = m.qbo_requests - q0, m.cw_requests - c0, m.batch_requests - b0
    s.rss_peak_mb = rss_peak_mb()


PHYSICAL_PER_MIN = 40 * BATCH_ITEMS
"""The most invoices any client can create in one QBO company a minute: 40 batch calls of <= 30 documents."""


def spread(values: Sequence[float], digits: int = 1, unit: str = "") -> str:
    """`median (min-max)` of repeated runs, e.g. `1,150.2 (1,120.0-1,171.9)`; one run prints just its value."""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.{digits}f}{unit}"
    return f"{med:,.{digits}f}{unit} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def pct_spread(values: Sequence[float]) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.1%}"
    return f"{med:.1%} ({min(values):.1%}-{max(values):.1%})"


def rate_bound(invoices: int, qbo_requests: int, batch_requests: int) -> tuple[float, str]:
    """Steady-state invoices/min QBO's limits allow for this run's request mix, and the formula used.

    Per minute at most BATCH_LIMIT batch calls and RATE_LIMIT requests of any kind. The run needs
    `batch_requests` batch calls and `qbo_requests` requests for `invoices` invoices, so the minutes it
    needs at least are max(batch_requests / BATCH_LIMIT, qbo_requests / RATE_LIMIT).
    """
    minutes = max(batch_requests / BATCH_LIMIT_PER_MIN, qbo_requests / RATE_LIMIT_PER_MIN)
    formula = (f"invoices / max(batch calls / {BATCH_LIMIT_PER_MIN}, all QBO calls / {RATE_LIMIT_PER_MIN}) per min"
               f" = {invoices} / max({batch_requests}/{BATCH_LIMIT_PER_MIN}, {qbo_requests}/{RATE_LIMIT_PER_MIN})")
    return (invoices / minutes if minutes > 0 else float("inf")), formula


@contextmanager
def workdir(path: Path | None) -> Iterator[Path]:
    """`path` if given (created if missing, left in place), else a temporary directory removed afterwards."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="cwqbo-bench-") as tmp:
        yield Path(tmp)


PACE_TURNS = 10_000_000
"""Turns of the pace loop. A CPU figure divided by (pace / PACE_TURNS) is in turns of it: the machine's drift
divided out, so a figure measured on a fast day and one on a slow day can be compared."""

PACE_LOOP = f"import time\nt = time.process_time()\nfor i in range({PACE_TURNS}): pass\nprint(time.process_time() - t)"
"""The README's measure of the machine's pace: `python3 -c 'for i in range(10_000_000): pass'`, timed inside."""


def machine_pace() -> float:
    """CPU seconds this machine takes for the README's 10-million-iteration loop, in a fresh interpreter. This
    machine's pace drifts by half over a day, so every CPU figure is printed beside it."""
    out = subprocess.run([sys.executable, "-c", PACE_LOOP], capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def verdict(ok: bool) -> str:
    return "target met" if ok else "target MISSED"


def print_table(title: str, rows: Sequence[tuple[str, str, str]], out: Callable[[str], None] = print) -> None:
    """A plain three-column table (figure, value, target/verdict): readable in a terminal and in CI logs."""
    out(f"\n== {title}")
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for name, value, note in rows:
        out(f"  {name:<{w0}}  {value:>{w1}}  {note}")


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def baseline_main(argv: list[str] | None, description: str | None, run: Callable[..., Any],
                  rows: Callable[[list[Any]], list[tuple[str, str, str]]], title: str) -> int:
    """The command line both baseline loops share: size, repeats, scale, latency, seed; prints one table."""
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=40.0)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="where the store goes (default: a temp dir)")
    args = parser.parse_args(argv)
    with workdir(args.workdir) as tmp:
        runs = [run(args.invoices, scale=args.scale, latency=args.latency, workdir=Path(tmp), seed=args.seed)
                for _ in range(max(1, args.repeat))]
    print_table(f"{title}, {args.invoices:,} generated invoices", rows(runs))
    return 0
