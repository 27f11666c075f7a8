"""The timing loop: the same method for every engine.

For each (engine, batch, concurrency): the inputs come from a pool drawn once per batch size and
shared by every engine (iteration ``i`` uses entry ``i % pool``, so caches see fresh data); the
first ``check`` pool entries are compared with the fp32 torch reference (max and mean absolute
error); ``warmup`` untimed runs follow; then ``iters`` timed runs (``iters`` per client thread at
concurrency > 1), or as many as fit in ``seconds``. A timed run is ``run`` + ``synchronize`` (the device is idle when the clock stops),
measured with ``time.perf_counter``. With concurrency ``c``, ``c`` threads each hold their own
client and send requests back to back; throughput is images over the wall time of the whole run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cptr.bench.stats import summarize
from cptr.bench.targets import Engine, Unavailable
from cptr.bench.workloads import Workload

MAX_ITERS = 1_000_000


@dataclass
class Settings:
    """How long and on what to measure."""

    iters: int = 30
    seconds: float | None = None  # a time budget per measurement instead of ``iters``
    warmup: int = 3
    pool: int = 16
    check: int = 2  # pool entries compared with the reference
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iters < 1 or self.warmup < 0 or self.pool < 1 or self.check < 0:
            raise ValueError("iters and pool must be >= 1, warmup and check >= 0")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")


@dataclass
class Measurement:
    """One row of results: an engine at one batch size and concurrency."""

    engine: str
    target: str
    stage: str
    batch: int
    concurrency: int = 1
    status: str = "ok"  # ok | unavailable | failed
    reason: str = ""
    precision: str = ""
    device: str = ""
    note: str = ""
    latencies_ms: list[float] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    error: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


class InputPool:
    """Random input batches per batch size (shared by all engines) and their fp32 references."""

    def __init__(self, workload: Workload, settings: Settings):
        self.workload, self.settings = workload, settings
        self._feeds: dict[int, list[dict[str, np.ndarray]]] = {}
        self._refs: dict[int, list[np.ndarray]] = {}

    def feeds(self, batch: int) -> list[dict[str, np.ndarray]]:
        if batch not in self._feeds:
            rng = np.random.default_rng([self.settings.seed, batch])
            self._feeds[batch] = [self.workload.sample(batch, rng) for _ in range(self.settings.pool)]
        return self._feeds[batch]

    def references(self, batch: int) -> list[np.ndarray]:
        if batch not in self._refs:
            n = min(self.settings.check, self.settings.pool)
            self._refs[batch] = [self.workload.reference(f) for f in self.feeds(batch)[:n]]
        return self._refs[batch]


IMAGE_PEAK = 2.0  # images are in [-1, 1]: PSNR on [0, 255] == PSNR on [-1, 1] with peak 2


def _is_image(a: np.ndarray) -> bool:
    return a.ndim == 4 and a.shape[1] == 3


def output_error(outputs: list[np.ndarray], references: list[np.ndarray]) -> dict[str, float]:
    """Max and mean absolute difference over all elements, in float64; for images also the PSNR in dB
    (images in [-1, 1] mapped to [0, 255]; None when identical)."""
    if not references:
        return {}
    worst, total, count, squares = 0.0, 0.0, 0, 0.0
    for out, ref in zip(outputs, references):
        out = np.asarray(out)
        if out.shape != ref.shape:
            raise ValueError(f"output shape {out.shape} differs from the reference {ref.shape}")
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
        if not np.isfinite(diff).all():
            return {"max_abs": float("nan"), "mean_abs": float("nan"), "n_images": int(sum(r.shape[0] for r in references))}
        worst = max(worst, float(diff.max()))
        total += float(diff.sum())
        squares += float(np.square(diff).sum())
        count += diff.size
    out = {"max_abs": worst, "mean_abs": total / count, "n_images": int(sum(r.shape[0] for r in references))}
    if all(_is_image(np.asarray(r)) for r in references):
        mse = squares / count
        out["psnr_db"] = round(float(10 * np.log10(IMAGE_PEAK**2 / mse)), 2) if mse > 0 else None
    return out


def _timed_loop(
    engine: Engine,
    prepared: list[Any],
    settings: Settings,
    start_index: int,
    next_index: Callable[[], int | None],
    tick: Callable[[int], None] | None,
) -> list[float]:
    for i in range(settings.warmup):
        engine.run(prepared[(start_index + i) % len(prepared)])
        engine.synchronize()
    latencies = []
    clock = time.perf_counter
    while (i := next_index()) is not None:
        x = prepared[(start_index + i) % len(prepared)]
        t0 = clock()
        engine.run(x)
        engine.synchronize()
        latencies.append(clock() - t0)
        if tick:
            tick(1)
    return latencies


class _Schedule:
    """Hands out iteration numbers until ``iters`` are taken or ``seconds`` have passed (thread-safe)."""

    def __init__(self, settings: Settings, concurrency: int = 1):
        self.iters = MAX_ITERS if settings.seconds else settings.iters * concurrency
        self.seconds = settings.seconds
        self.lock = threading.Lock()
        self.taken = 0
        self.deadline: float | None = None

    def start(self) -> None:
        self.deadline = time.perf_counter() + self.seconds if self.seconds else None

    def __call__(self) -> int | None:
        with self.lock:
            if self.taken >= self.iters:
                return None
            if self.deadline is not None and self.taken > 0 and time.perf_counter() >= self.deadline:
                return None
            self.taken += 1
            return self.taken - 1


def _new_row(engine: Engine, pool: InputPool, batch: int, concurrency: int) -> Measurement:
    return Measurement(
        engine.name,
        engine.target,
        pool.workload.stage,
        batch,
        concurrency,
        precision=engine.precision,
        device=engine.device,
        note=engine.note,
    )


def _prepare_and_check(engine: Engine, pool: InputPool, batch: int, row: Measurement) -> list[Any]:
    """Inputs in the engine's form, and the output error on the first pool entries (untimed)."""
    prepared = [engine.prepare(f) for f in pool.feeds(batch)]
    refs = pool.references(batch)
    outs = []
    for i in range(len(refs)):
        outs.append(engine.to_numpy(engine.run(prepared[i])))
        engine.synchronize()
    row.error = output_error(outs, refs)
    return prepared


def measure(
    engine: Engine, pool: InputPool, batch: int, concurrency: int, settings: Settings, tick: Callable[[int], None] | None = None
) -> Measurement:
    """Time ``engine`` at ``batch`` x ``concurrency`` and compare its output with the reference."""
    row = _new_row(engine, pool, batch, concurrency)
    try:
        prepared = _prepare_and_check(engine, pool, batch, row)
        schedule = _Schedule(settings, concurrency)  # ``iters`` timed requests per client thread
        if concurrency == 1:
            schedule.start()
            latencies = _timed_loop(engine, prepared, settings, 0, schedule, tick)
            wall = sum(latencies)
        else:
            latencies, wall = _concurrent(engine, prepared, settings, concurrency, schedule, tick)
        row.latencies_ms = [round(t * 1e3, 4) for t in latencies]
        row.stats = summarize(latencies, batch, wall)
        row.info = engine.info()
    except Exception as e:  # noqa: BLE001 - one failing engine must not stop the run
        row.status, row.reason = "failed", f"{type(e).__name__}: {e}"
    return row


def measure_interleaved(
    engines: list[Engine], pool: InputPool, batch: int, settings: Settings, tick: Callable[[int], None] | None = None
) -> list[Measurement]:
    """Time several engines at ``batch`` (concurrency 1) in rounds: one timed run of each per round.

    A load spike from other processes then hits every engine alike, so the ratios between engines
    stay meaningful on a shared machine. The engine order rotates every round; with ``seconds`` the
    rounds stop when ``seconds x len(engines)`` have passed.
    """
    rows = [_new_row(e, pool, batch, 1) for e in engines]
    live: list[tuple[int, list[Any]]] = []
    for k, (engine, row) in enumerate(zip(engines, rows)):
        try:
            prepared = _prepare_and_check(engine, pool, batch, row)
            for i in range(settings.warmup):
                engine.run(prepared[i % len(prepared)])
                engine.synchronize()
            live.append((k, prepared))
        except Exception as e:  # noqa: BLE001
            row.status, row.reason = "failed", f"{type(e).__name__}: {e}"
    latencies: dict[int, list[float]] = {k: [] for k, _ in live}
    deadline = time.perf_counter() + settings.seconds * max(1, len(live)) if settings.seconds else None
    clock = time.perf_counter
    i = 0
    while live and (i < settings.iters if deadline is None else (i == 0 or clock() < deadline)) and i < MAX_ITERS:
        order = live[i % len(live) :] + live[: i % len(live)]
        for k, prepared in order:
            engine = engines[k]
            x = prepared[i % len(prepared)]
            try:
                t0 = clock()
                engine.run(x)
                engine.synchronize()
                latencies[k].append(clock() - t0)
            except Exception as e:  # noqa: BLE001
                rows[k].status, rows[k].reason = "failed", f"{type(e).__name__}: {e}"
                live = [item for item in live if item[0] != k]
            if tick:
                tick(1)
        i += 1
    for k, lat in latencies.items():
        if rows[k].status == "ok":
            rows[k].latencies_ms = [round(t * 1e3, 4) for t in lat]
            rows[k].stats = summarize(lat, batch)
            rows[k].info = engines[k].info()
    return rows


def _concurrent(
    engine: Engine, prepared: list[Any], settings: Settings, concurrency: int, schedule: _Schedule, tick: Callable[[int], None] | None
) -> tuple[list[float], float]:
    if not engine.concurrent:
        raise ValueError(f"{engine.name} does not take concurrent requests; use --concurrency 1")
    workers = [engine.worker() for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)
    results: list[list[float]] = [[] for _ in workers]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            w = workers[k]
            for i in range(settings.warmup):
                w.run(prepared[(k + i) % len(prepared)])
                w.synchronize()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        barrier.wait()
        if errors:
            return
        try:
            results[k] = _timed_loop(
                w,
                prepared,
                Settings(settings.iters, settings.seconds, 0, settings.pool, settings.check, settings.seed),
                k * 7,
                schedule,
                tick,
            )
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    schedule.start()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for w in workers:
        if w is not engine:
            w.close()
    if errors:
        raise errors[0]
    return [t for r in results for t in r], wall


def unavailable_row(u: Unavailable, stage: str, batch: int = 0) -> Measurement:
    return Measurement(u.name, u.target, stage, batch, 0, status="failed" if u.failed else "unavailable", reason=u.reason)
