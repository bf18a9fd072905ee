"""The whole-fit benchmark's records and report tables (`bench_fit.py`): what one `fit`
measured, the attribution arithmetic (training-only CPU, the worker's interference) and the
markdown tables."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

MODES = ("none", "defaults")
COLD = "defaults-cold"
"""`--cold`: the defaults without the warm-up at `on_train_begin` (the behaviour before #20)."""
VARIANTS = {
    COLD: "the defaults without the warm-up at `on_train_begin` (the behaviour before #20)",
    "inline": "the defaults with `Runtime(background_writer=False)`: rendering and writing in "
    "`on_epoch_end`",
    "no-worker-job": "the defaults with each step's rendering and writing left out (the epoch "
    "end's computation only; nothing is written): what the worker's job costs training",
    "worker-nice": "the defaults with the worker thread at nice 10 (Linux): does training "
    "win the CPU back?",
}
"""`--modes`: variants of the defaults that attribute the cost; `inline` is an option of the
callback, the others are experiments."""
ALL_MODES = (*MODES, *VARIANTS)


@dataclass
class Span:
    """Wall and CPU milliseconds of one call (CPU: process-wide, or the calling thread's)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __iadd__(self, other: Span) -> Span:
        self.wall += other.wall
        self.cpu += other.cpu
        return self


@dataclass
class FitRecord:
    """Everything measured in one `fit`."""

    mode: str
    fit_wall: float = 0.0
    epoch_wall: list[float] = field(default_factory=list)
    epoch_cpu: list[float] = field(default_factory=list)
    epoch_starts: list[float] = field(default_factory=list)
    epoch_first_batch: list[float] = field(default_factory=list)
    """Wall ms from each epoch's start to its first training batch: Keras makes the epoch's
    data iterator there, and TensorFlow tears the previous epoch's down (see `WAITED`)."""
    epoch_worker_cpu: list[float] = field(default_factory=list)
    """The callback's worker thread's CPU ms in each epoch (it renders the previous step)."""
    epoch_faults: list[int] = field(default_factory=list)
    """Minor page faults of the process in each epoch (new memory touched)."""
    epoch_waits: list[int] = field(default_factory=list)
    """Voluntary context switches of the training thread in each epoch (it blocked: the GIL,
    a lock, TensorFlow's ops)."""
    hooks: dict[str, list[Span]] = field(default_factory=lambda: defaultdict(list))
    parts: dict[int, dict[str, Span]] = field(default_factory=lambda: defaultdict(dict))
    worker: list[tuple[int, float, float, float]] = field(default_factory=list)
    """(step, start, end, thread CPU ms) of each job on the worker thread."""
    traces: list[tuple[int, int]] = field(default_factory=list)
    """(explainer traces, train-function traces) at the end of each epoch."""
    gc_pauses: dict[int, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    retrace_warnings: int = 0
    batches: list[tuple[int, float, float]] = field(default_factory=list)
    """`--batches`: (epoch, start, end) of each training batch."""
    epoch: int = -1
    worker_step: int = -1


def train_only_cpu(r: FitRecord) -> list[float]:
    """Each epoch's process CPU ms less the callback's own: its `on_epoch_end` (process CPU)
    and its worker thread's CPU in that epoch. What is left is training's (and Keras's); with
    the callback it exceeds the no-callback fits' only if the callback slows training down."""
    ends = r.hooks.get("on_epoch_end", [])
    return [
        cpu
        - (ends[e].cpu if e < len(ends) else 0.0)
        - (r.epoch_worker_cpu[e] if r.epoch_worker_cpu else 0.0)
        for e, cpu in enumerate(r.epoch_cpu)
    ]


# -- report -----------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _pct(a: float, b: float) -> str:
    return f"{(a / b - 1) * 100:+.1f}%"


def _modes(records: list[FitRecord]) -> list[str]:
    return list(dict.fromkeys(r.mode for r in records))


WAITED = 500.0
"""An epoch whose first training batch started more than this many ms after the epoch began
waited for TensorFlow: with Keras's own pipeline for arrays (`tf.data` with autotuning), the
previous epoch's iterator is torn down there and the teardown sometimes waits 0.7-5 s with
every core idle (the slow epochs of #20; `docs/performance-fit.md`). It happens with or
without the callback, and not with autotuning off (`bench_fit.py --tf-data no-autotune`)."""


def waited_epochs(records: list[FitRecord]) -> str:
    """'k of n (longest s)': the epochs of `records` whose first batch waited (`WAITED`)."""
    waits = [w for r in records for w in r.epoch_first_batch]
    if not waits:
        return "-"
    return f"{sum(w > WAITED for w in waits)} of {len(waits)} ({max(waits) / 1e3:.2f})"


def summary_table(records: list[FitRecord], whole_fit: bool) -> tuple[list[str], dict[str, bool]]:
    none = [r for r in records if r.mode == "none"]
    base_epoch = _med([e for r in none for e in r.epoch_wall])
    base_cpu = _med([e for r in none for e in r.epoch_cpu])
    base_fit = _med([r.fit_wall for r in none])
    base_train = _med([e for r in none for e in train_only_cpu(r)[1:]])
    lines = [
        "| mode | whole `fit` per round (s) | vs none | median epoch (s) | vs none | slowest "
        "epoch after the first (s) | / median none epoch | median epoch CPU (s) | vs none | GC "
        "pauses after epoch 0 (ms, gen-2 count) | page faults per epoch after the first, median | "
        "training-thread waits per epoch after the first, median | training-only CPU per epoch "
        "after the first, median (s) | vs none | epochs whose first batch waited > "
        f"{WAITED / 1e3:.1f} s for TensorFlow (longest wait, s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok: dict[str, bool] = {}
    for mode in sorted(_modes(records), key=ALL_MODES.index):
        rs = [r for r in records if r.mode == mode]
        fits = [r.fit_wall for r in rs]
        epochs = [e for r in rs for e in r.epoch_wall]
        later = [e for r in rs for e in r.epoch_wall[1:]]
        slowest = max(later) if later else float("nan")
        cpu = _med([e for r in rs for e in r.epoch_cpu])
        train = _med([e for r in rs for e in train_only_cpu(r)[1:]])
        pauses = [p for r in rs for e, ps in r.gc_pauses.items() if e > 0 for p in ps]
        gcs = f"{sum(p for _, p in pauses):.0f} ({sum(g == 2 for g, _ in pauses)})"
        lines.append(
            f"| {mode} | {' / '.join(f'{f / 1e3:.2f}' for f in fits)} | "
            f"{_pct(_med(fits), base_fit)} | {_med(epochs) / 1e3:.2f} | "
            f"{_pct(_med(epochs), base_epoch)} | {slowest / 1e3:.2f} | "
            f"{slowest / base_epoch:.2f}x | {cpu / 1e3:.2f} | {_pct(cpu, base_cpu)} | {gcs} | "
            f"{_med([f for r in rs for f in r.epoch_faults[1:]]):.0f} | "
            f"{_med([w for r in rs for w in r.epoch_waits[1:]]):.0f} | {train / 1e3:.2f} | "
            f"{_pct(train, base_train)} | {waited_epochs(rs)} |"
        )
        if mode == "defaults":
            ok["no epoch after the first > 1.3x the median no-callback epoch"] = (
                slowest <= 1.3 * base_epoch
            )
            if whole_fit:
                ok["whole fit <= +5%"] = _med(fits) <= 1.05 * base_fit
            else:
                ok["median epoch <= +3%"] = _med(epochs) <= 1.03 * base_epoch
    return lines, ok


def fixed_cost_table(records: list[FitRecord]) -> tuple[list[str], bool]:
    """The callback's setup, first and later epoch ends, last join; per fit with a callback."""
    lines = [
        "| mode, round | setup `on_train_begin` wall / CPU (ms) | first `on_epoch_end` wall / "
        "CPU (ms) | later `on_epoch_end`, median wall / CPU (ms) | first / later | last join "
        "`on_train_end` wall (ms) |",
        "|---|---|---|---|---|---|",
    ]
    ratios = []
    rounds: dict[str, int] = defaultdict(int)
    for r in (x for x in records if x.mode != "none"):
        i = rounds[r.mode]
        rounds[r.mode] += 1
        begin = r.hooks["on_train_begin"][0]
        ends = r.hooks["on_epoch_end"]
        later = ends[1:]
        lw, lc = _med([s.wall for s in later]), _med([s.cpu for s in later])
        ratio = ends[0].wall / lw if later else float("nan")
        if r.mode == "defaults":
            ratios.append(ratio)
        join = r.hooks["on_train_end"][0]
        lines.append(
            f"| {r.mode}, {i} | {begin.wall:.0f} / {begin.cpu:.0f} | {ends[0].wall:.0f} / "
            f"{ends[0].cpu:.0f} | {lw:.0f} / {lc:.0f} | {ratio:.2f}x | {join.wall:.0f} |"
        )
    return lines, all(r <= 2.0 for r in ratios)


def interference_table(records: list[FitRecord]) -> list[str]:
    """`--batches`: per fit, the training batches after epoch 0 that ran while the worker's job
    did, against the median of the others in the same fit: the wall time the worker's job
    adds to training (its CPU, the GIL, the cores it takes), per epoch."""
    lines = [
        "| mode, round | median batch (ms) | batches during the worker's jobs, per epoch | their "
        "mean (ms) | added to training per epoch (ms) | worker job wall / thread CPU per "
        "epoch, median (ms) |",
        "|---|---|---|---|---|---|",
    ]
    rounds: dict[str, int] = defaultdict(int)
    for r in records:
        i = rounds[r.mode]
        rounds[r.mode] += 1
        jobs = [(s, e) for step, s, e, _ in r.worker if step >= 0]
        later = [(s, e) for epoch, s, e in r.batches if epoch > 0]
        if not later:
            continue
        busy = [e - s for s, e in later if any(js < e and je > s for js, je in jobs)]
        free = [e - s for s, e in later if not any(js < e and je > s for js, je in jobs)]
        base = _med(free)
        epochs = max(1, len(r.epoch_wall) - 1)
        added = sum(b - base for b in busy) / epochs
        job_wall = _med([(e - s) * 1e3 for step, s, e, _ in r.worker if step >= 0])
        job_cpu = _med([c for step, _, _, c in r.worker if step >= 0])
        lines.append(
            f"| {r.mode}, {i} | {base * 1e3:.1f} | {len(busy) / epochs:.1f} | "
            f"{_med(busy) * 1e3 if busy else float('nan'):.1f} | {added * 1e3:.0f} | "
            f"{job_wall:.0f} / {job_cpu:.0f} |"
        )
    return lines


def profile_table(records: list[FitRecord]) -> list[str]:
    """Per epoch of each defaults fit: the parts' CPU ms, traces, GC, worker overlap."""
    lines = []
    rounds: dict[str, int] = defaultdict(int)
    for r in (x for x in records if x.mode != "none"):
        i = rounds[r.mode]
        rounds[r.mode] += 1
        names = sorted({p for parts in r.parts.values() for p in parts})
        lines += [
            f"\n{r.mode}, round {i}, per epoch (CPU ms; the worker's parts in its thread's CPU "
            f"time; {r.retrace_warnings} retracing warnings from TensorFlow):\n",
            "| epoch | epoch wall / CPU (ms) | "
            + " | ".join(names)
            + " | worker job: thread CPU, overlap with the next epoch (ms) | explainer traces "
            "(total) | train-function traces (total) | GC pauses (ms, gen 2 count) | page faults | "
            "training-thread waits |",
            "|---|---|" + "---|" * len(names) + "---|---|---|---|---|---|",
        ]
        for e, (wall, cpu) in enumerate(zip(r.epoch_wall, r.epoch_cpu, strict=True)):
            cells = [f"{r.parts[e][n].cpu:.0f}" if n in r.parts[e] else "" for n in names]
            jobs = [j for j in r.worker if j[0] == e]
            job = ""
            if jobs:
                _, start, end, jcpu = jobs[0]
                nxt = r.epoch_starts[e + 1] if e + 1 < len(r.epoch_starts) else end
                job = f"{jcpu:.0f}, {max(0.0, end - max(start, nxt)) * 1e3:.0f}"
            pauses = r.gc_pauses.get(e, [])
            gcs = f"{sum(p for _, p in pauses):.0f} ({sum(g == 2 for g, _ in pauses)})"
            explainer, train = r.traces[e] if e < len(r.traces) else (-1, -1)
            lines.append(
                f"| {e} | {wall:.0f} / {cpu:.0f} | "
                + " | ".join(cells)
                + f" | {job} | {explainer} | {train} | {gcs} | {r.epoch_faults[e]} | "
                f"{r.epoch_waits[e]} |"
            )
    return lines
