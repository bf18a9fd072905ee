"""A whole `fit` with the callback's defaults against no callback, as a user feels it.

    python benchmarks/bench_fit.py --rounds 3          # the idle-machine measurement (#20)
    python benchmarks/bench_fit.py --quick             # a smoke test (seconds)

Each round runs one `fit` per mode (`none`: no callback; `defaults`: `SaliencyCallback` with
its defaults, probes with labels and masks, logging every epoch), in alternating order (round 0:
none then defaults, round 1: defaults then none, ...), each on a freshly built, identically
seeded model. Before the rounds, an untimed 1-epoch fit without the callback warms TensorFlow's
own first-time work up, so the first timed fit does not pay it; the callback's own once-per-
process work is *not* warmed: round 0 shows what a user's first `fit` pays.

The epoch clock is a callback listed first (`on_epoch_begin`) and last (`on_epoch_end`), so an
epoch includes the callback's `on_epoch_end`. Reported per workload, with ratios against the
no-callback fits of the same run:

- the whole `fit` (wall), the median epoch, the slowest epoch after the first (and its ratio to
  the median no-callback epoch: the stall target is <= 1.3x), process CPU time per epoch, and
  the epochs whose first batch waited for TensorFlow (`_fit_report.WAITED`: the teardown of
  the previous epoch's `tf.data` iterator, with or without the callback; `--tf-data
  no-autotune` gives `fit` a dataset with autotuning off, which does not wait);
- the fixed cost: `on_train_begin` (setup), the first logged epoch's `on_epoch_end` blocking
  time against the later ones', `on_train_end` (the last join);
- a profile of the callback per epoch, in process CPU time (which survives machine load better
  than wall time): the gradients, the background forward pass, the worker's rendering and
  encoding and writing (thread CPU time, and how much of it overlapped training), the traces of
  the explainer's compiled functions and of Keras's train function, TensorFlow's retracing
  warnings and Python's garbage-collection pauses.

Workloads: `cnn` (the small CNN of `_common`, 8,000 training images of 64x64 per epoch,
6 epochs) and `mobilenet` (MobileNetV2, weights=None, 96x96, 8,000 training images per epoch,
3 epochs); 32 probes with labels and masks each. Targets (#20): no epoch after the first above
1.3x the median no-callback epoch and the first `on_epoch_end` <= 2x a later one (both); <= 5%
added to the whole fit (cnn); <= 3% added to the median epoch (mobilenet). Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import logging
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from _common import environment, small_cnn
from _fit_report import (
    ALL_MODES,
    COLD,
    MODES,
    VARIANTS,
    FitRecord,
    Span,
    fixed_cost_table,
    interference_table,
    profile_table,
    summary_table,
)
from _markdown import command_line, write_section

from saliency_callback import Runtime, SaliencyCallback, make_shortcut_data


@dataclass(frozen=True)
class FitWorkload:
    name: str
    build: Callable[[], keras.Model]
    size: int
    images: int
    epochs: int
    probes: int = 32
    num_classes: int = 3


def workloads(quick: bool, epochs: int | None) -> dict[str, FitWorkload]:
    if quick:
        return {
            "cnn": FitWorkload(
                "cnn", lambda: small_cnn((32, 32, 3), 3), 32, 128, epochs or 2, probes=4
            )
        }
    return {
        "cnn": FitWorkload("cnn", lambda: small_cnn((64, 64, 3), 3), 64, 8000, epochs or 6),
        "mobilenet": FitWorkload("mobilenet", lambda: _mobilenet(96, 3), 96, 8000, epochs or 3),
    }


def _mobilenet(size: int, num_classes: int) -> keras.Model:
    """`_common.mobilenet` with the data's 3 classes (the probes' class names must match)."""
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(
        input_shape=(size, size, 3), weights=None, classes=num_classes
    )


# -- measurement ------------------------------------------------------------------------------


class Clock(keras.callbacks.Callback):
    """Epoch wall/CPU clock: one instance first in the callback list, one last."""

    def __init__(self, record: FitRecord, end: bool) -> None:
        super().__init__()
        self.record, self.end = record, end
        self._start = (0.0, 0.0)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if not self.end:
            self.record.epoch = epoch
            now = time.perf_counter()
            self.record.epoch_starts.append(now)
            Clock.starts[id(self.record)] = (now, time.process_time())
            Clock.counters[id(self.record)] = _counters()
            Clock.worker_cpu_at[id(self.record)] = self.worker_cpu()

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        # A begin hook keeps Keras's asynchronous dispatch (only end hooks turn it off).
        if not self.end and len(self.record.epoch_first_batch) < len(self.record.epoch_starts):
            self.record.epoch_first_batch.append(
                (time.perf_counter() - self.record.epoch_starts[-1]) * 1e3
            )

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.end:
            wall, cpu = Clock.starts[id(self.record)]
            self.record.epoch_wall.append((time.perf_counter() - wall) * 1e3)
            self.record.epoch_cpu.append((time.process_time() - cpu) * 1e3)
            faults, waits = (
                b - a for a, b in zip(Clock.counters[id(self.record)], _counters(), strict=True)
            )
            self.record.epoch_worker_cpu.append(
                self.worker_cpu() - Clock.worker_cpu_at.get(id(self.record), 0.0)
            )
            self.record.epoch_faults.append(faults)
            self.record.epoch_waits.append(waits)
            self.record.traces.append((self.record_traces(), _train_traces(self.model)))

    def record_traces(self) -> int:
        cb = Clock.callbacks.get(id(self.record))
        explainer = getattr(cb, "_explainer", None)
        return int(explainer.tracing_count) if explainer is not None else 0

    def worker_cpu(self) -> float:
        """CPU ms so far of the callback's worker thread (0 before it starts, or without)."""
        worker = getattr(Clock.callbacks.get(id(self.record)), "_worker", None)
        thread = getattr(worker, "_thread", None)
        tid = getattr(thread, "native_id", None)
        return _thread_cpu(tid) if tid is not None else 0.0

    starts: ClassVar[dict[int, tuple[float, float]]] = {}
    worker_cpu_at: ClassVar[dict[int, float]] = {}
    counters: ClassVar[dict[int, tuple[int, int]]] = {}
    callbacks: ClassVar[dict[int, Any]] = {}


def _counters() -> tuple[int, int]:
    """(minor page faults of the process, voluntary context switches of this thread)."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    waits = -1
    status = f"/proc/self/task/{threading.get_native_id()}/status"
    with contextlib.suppress(OSError), open(status) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                waits = int(line.split()[1])
    return faults, waits


def _thread_cpu(tid: int) -> float:
    """CPU ms (user + system) of the thread `tid` of this process (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1e3 / os.sysconf("SC_CLK_TCK")


def _train_traces(model: keras.Model) -> int:
    fn = getattr(model, "train_function", None)
    fn = getattr(fn, "__wrapped__", fn)
    count = getattr(fn, "experimental_get_tracing_count", None)
    if count is None:  # Keras wraps the tf.function in a Python closure
        for cell in getattr(fn, "__closure__", None) or ():
            inner = getattr(cell.cell_contents, "experimental_get_tracing_count", None)
            if inner is not None:
                return int(inner())
        return -1
    return int(count())


def _wrap(obj: Any, name: str, sink: Callable[[Span], None], thread_cpu: bool = False) -> None:
    """Replaces `obj.name` by a wrapper that reports each call's wall and CPU ms to `sink`."""
    original = getattr(obj, name, None)
    if original is None:
        return
    clock = time.thread_time if thread_cpu else time.process_time

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), clock()
        try:
            return original(*args, **kwargs)
        finally:
            sink(Span((time.perf_counter() - wall) * 1e3, (clock() - cpu) * 1e3))

    object.__setattr__(obj, name, wrapper)


class BatchClock(keras.callbacks.Callback):
    """`--batches`: each training batch's start and end. A callback with batch hooks makes
    Keras wait for each batch's result (no asynchronous dispatch), in every mode alike."""

    def __init__(self, record: FitRecord) -> None:
        super().__init__()
        self.record, self._start = record, 0.0

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.record.batches.append((self.record.epoch, self._start, time.perf_counter()))


def instrument(cb: SaliencyCallback, record: FitRecord, nice: bool = False) -> None:
    """Times the callback's hooks, and (after `on_train_begin`) the parts of its epoch end;
    with `nice`, the worker thread lowers its priority at its first step."""

    def hook_sink(hook: str) -> Callable[[Span], None]:
        return lambda span: record.hooks[hook].append(span)

    def part_sink(part: str, worker: bool = False) -> Callable[[Span], None]:
        def sink(span: Span) -> None:  # the worker's parts go to the step they write
            bucket = record.parts[record.worker_step if worker else record.epoch]
            bucket.setdefault(part, Span())
            bucket[part] += span

        return sink

    original_begin = cb.on_train_begin

    def on_train_begin(logs: Any = None) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        original_begin(logs)
        record.hooks["on_train_begin"].append(
            Span((time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3)
        )
        explainer = cb._explainer
        _wrap(explainer, "explain_prepared", part_sink("gradients (training thread)"))
        _wrap(explainer, "predict", part_sink("background forward (training thread)"))
        step_writer = cb._step_writer
        if step_writer is not None:
            _wrap(step_writer.renderer, "panels", part_sink("render panels (worker)", True), True)
            _wrap(step_writer.writer, "encode", part_sink("PNG encode (worker)", True), True)
            _wrap(
                step_writer.writer, "write_pngs", part_sink("summary writes (worker)", True), True
            )
            _wrap(step_writer.writer, "flush", part_sink("flush (worker)", True), True)
            write = step_writer.write

            def timed_write(payload: Any) -> Any:
                record.worker_step = payload.step
                if nice and threading.current_thread() is not threading.main_thread():
                    with contextlib.suppress(OSError, AttributeError):
                        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
                start, cpu = time.perf_counter(), time.thread_time()
                try:
                    return write(payload)
                finally:
                    record.worker.append(
                        (payload.step, start, time.perf_counter(), (time.thread_time() - cpu) * 1e3)
                    )

            object.__setattr__(step_writer, "write", timed_write)

    cb.on_train_begin = on_train_begin  # type: ignore[method-assign]
    _wrap(cb, "on_epoch_end", hook_sink("on_epoch_end"))
    _wrap(cb, "on_train_end", hook_sink("on_train_end"))


@contextlib.contextmanager
def watch_process(record: FitRecord) -> Iterator[None]:
    """Python GC pauses (per epoch) and TensorFlow's retracing warnings during a fit."""
    started: dict[int, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if threading.current_thread() is not threading.main_thread():
            key = -threading.get_ident()
        else:
            key = 0
        if phase == "start":
            started[key] = time.perf_counter()
        elif key in started:
            pause = (time.perf_counter() - started.pop(key)) * 1e3
            record.gc_pauses[record.epoch].append((info["generation"], pause))

    class Retraces(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            if "retracing" in entry.getMessage():
                record.retrace_warnings += 1

    handler = Retraces()
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(handler)
    gc.callbacks.append(on_gc)
    try:
        yield
    finally:
        gc.callbacks.remove(on_gc)
        tf_logger.removeHandler(handler)


TF_DATA = {
    "keras": "the arrays given to `fit`: Keras's own pipeline (`tf.data` with autotuning)",
    "no-autotune": "a `tf.data.Dataset` of the same arrays, reshuffled each epoch (seed 0), "
    "batches of 32, prefetch 2, `options.autotune.enabled = False`",
}
"""`--tf-data`: how the training data reaches `fit`, the same in every mode."""


def fit_inputs(train: Any, tf_data: str) -> dict[str, Any]:
    """`model.fit`'s data arguments for `--tf-data` (see `TF_DATA`)."""
    if tf_data == "keras":
        return {"x": train.images, "y": train.labels, "batch_size": 32}
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = (
        tf.data.Dataset.from_tensor_slices((train.images, train.labels))
        .shuffle(len(train.images), seed=0, reshuffle_each_iteration=True)
        .batch(32)
        .prefetch(2)
        .with_options(options)
    )
    return {"x": dataset, "shuffle": False}  # the dataset shuffles (Keras would warn)


def run_fit(
    w: FitWorkload,
    mode: str,
    train: Any,
    probes: Any,
    log_dir: str,
    batches: bool = False,
    tf_data: str = "keras",
) -> FitRecord:
    record = FitRecord(mode)
    model = w.build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks: list[keras.callbacks.Callback] = [Clock(record, end=False)]
    if batches:
        callbacks.append(BatchClock(record))
    if mode != "none":
        runtime = Runtime(background_writer=mode != "inline")
        cb = SaliencyCallback(
            probes.images,
            labels=probes.labels,
            masks=probes.masks,
            class_names=list(probes.class_names),
            log_dir=log_dir,
            runtime=runtime,
        )
        instrument(cb, record, nice=mode == "worker-nice")
        if mode == COLD:
            cb._warm_up = lambda: None  # type: ignore[method-assign]
        if mode == "no-worker-job":
            cb._submit = lambda payload: None  # type: ignore[method-assign]
        Clock.callbacks[id(record)] = cb
        callbacks.append(cb)
    callbacks.append(Clock(record, end=True))
    with watch_process(record):
        start = time.perf_counter()
        model.fit(
            **fit_inputs(train, tf_data),
            epochs=w.epochs,
            verbose=0,
            callbacks=callbacks,
        )
        record.fit_wall = (time.perf_counter() - start) * 1e3
    Clock.callbacks.pop(id(record), None)
    return record


def hook_costs(fits: int) -> None:
    """The callback's hooks called directly (no training), in process CPU time, alternating the
    defaults with and without the warm-up, each on a fresh small CNN with 32 probes, three
    logged epochs; then where a new model's first-time CPU goes. CPU time survives load."""
    probes = make_shortcut_data(32, image_size=64, seed=1)
    tmp = tempfile.mkdtemp(prefix="bench_fit_hooks_")

    def callback(i: int) -> SaliencyCallback:
        model = small_cnn((64, 64, 3), 3)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        cb = SaliencyCallback(
            probes.images,
            labels=probes.labels,
            masks=probes.masks,
            class_names=list(probes.class_names),
            log_dir=os.path.join(tmp, str(i)),
        )
        cb.set_model(model)
        cb.params = {"epochs": 3}
        return cb

    print(
        "| fit | mode | `on_train_begin` | `on_epoch_end` 0 | 1 | 2 | `on_train_end` | total |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    try:
        for i in range(fits):
            cb = callback(i)
            if i % 2:
                cb._warm_up = lambda: None  # type: ignore[method-assign]
            hooks = [
                cb.on_train_begin,
                *(functools.partial(cb.on_epoch_end, e, {}) for e in range(3)),
                cb.on_train_end,
            ]
            ms = []
            for hook in hooks:
                cpu = time.process_time()
                hook()
                ms.append((time.process_time() - cpu) * 1e3)
            mode = COLD if i % 2 else "defaults"
            cells = " | ".join(f"{m:.0f}" for m in ms)
            print(f"| {i} | {mode} | {cells} | {sum(ms):.0f} |")
        cb = callback(fits)
        cb._warm_up = lambda: None  # type: ignore[method-assign]
        cb.on_train_begin()
        explainer, (x, _) = cb._explainer, cb._prepared
        assert explainer is not None
        shape = tuple(x.shape[1:])
        _, forward = explainer._functions(shape)
        sweep = explainer._sweep(shape)
        x1, i1, t1 = x[:1], np.zeros(1, np.int32), np.full(1, -1, np.int32)
        parts = {
            "trace the forward pass": forward.get_concrete_function,
            "first call of the forward pass": lambda: forward(x1, i1, t1),
        }
        if sweep is not None:
            parts["trace the sweep"] = sweep.get_concrete_function
            parts["first call of the sweep"] = lambda: sweep(x1, np.zeros(1, np.int32))
            parts["second call of the sweep"] = lambda: sweep(x1, np.zeros(1, np.int32))
        assert cb._step_writer is not None
        parts["rendering warm-up"] = cb._step_writer.warm_up
        print("\nA new model's first-time work (CPU ms):\n")
        for name, fn in parts.items():
            cpu = time.process_time()
            fn()
            print(f"- {name}: {(time.process_time() - cpu) * 1e3:.0f}")
        cb.on_train_end()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--workloads", default="cnn,mobilenet", help="comma-separated")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fit")
    parser.add_argument("--images", type=int, default=None, help="training images per epoch")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke test")
    parser.add_argument(
        "--cold", action="store_true", help=f"also run {COLD!r}: the defaults without warm-up"
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated, from "
        + "; ".join([f"{m}" for m in MODES] + [f"{m} ({d})" for m, d in VARIANTS.items()]),
    )
    parser.add_argument(
        "--batches",
        action="store_true",
        help="also time each training batch: what the worker's job adds to training",
    )
    parser.add_argument(
        "--hooks",
        type=int,
        default=0,
        metavar="FITS",
        help="instead: the hooks' CPU time over FITS fits without training (see hook_costs)",
    )
    parser.add_argument(
        "--tf-data",
        choices=list(TF_DATA),
        default="keras",
        help="how the training data reaches fit: "
        + "; ".join(f"{k}: {v}" for k, v in TF_DATA.items()),
    )
    parser.add_argument("--no-profile", action="store_true", help="leave out the profile")
    parser.add_argument(
        "--markdown",
        metavar="PAGE",
        help="also write the report into section --section of this page (_markdown.py)",
    )
    parser.add_argument("--section", default="bench_fit", help="the page's section (bench_fit)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, received {args.rounds}")
    chosen_modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in chosen_modes if m not in ALL_MODES]
    if unknown or not chosen_modes:
        parser.error(f"--modes: expected some of {list(ALL_MODES)}, received {args.modes!r}")
    chosen = workloads(args.quick, args.epochs)
    names = [n for n in args.workloads.split(",") if n in chosen] if not args.quick else ["cnn"]
    if not names:
        parser.error(f"--workloads: expected some of {sorted(chosen)}, received {args.workloads}")
    load_start = os.getloadavg()
    if args.hooks:
        print(f"# bench_fit --hooks {args.hooks}\n\n{environment()}\n")
        hook_costs(args.hooks)
        print(
            f"\nload average (1 min) at start {load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f}"
        )
        return 0
    print(f"# bench_fit: {' '.join(sys.argv[1:]) or '(defaults)'}\n\n{environment()}\n")
    all_ok = True
    report: list[str] = []  # what --markdown writes: every workload's tables, as printed
    for name in names:
        w = chosen[name]
        if args.images:
            w = dataclasses.replace(w, images=args.images)
        train = make_shortcut_data(w.images, image_size=w.size, num_classes=w.num_classes, seed=0)
        probes = make_shortcut_data(w.probes, image_size=w.size, num_classes=w.num_classes, seed=1)
        tmp = tempfile.mkdtemp(prefix="bench_fit_")
        records: list[FitRecord] = []
        try:
            warm = make_shortcut_data(64, image_size=w.size, num_classes=w.num_classes, seed=2)
            warm_up = FitWorkload(w.name, w.build, w.size, 64, 1)
            run_fit(warm_up, "none", warm, probes, tmp, tf_data=args.tf_data)
            modes = tuple(dict.fromkeys([*chosen_modes, *([COLD] if args.cold else [])]))
            for r in range(args.rounds):
                order = modes if r % 2 == 0 else modes[::-1]
                for mode in order:
                    log_dir = os.path.join(tmp, f"{mode}_{r}")
                    records.append(
                        run_fit(w, mode, train, probes, log_dir, args.batches, args.tf_data)
                    )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        lines, ok = summary_table(records, whole_fit=name == "cnn")
        fixed, blocking_ok = fixed_cost_table(records)
        ok["first on_epoch_end <= 2x a later one"] = blocking_ok
        part = [
            f"### {name}: {w.images} training images {w.size}x{w.size} per epoch, {w.epochs} "
            f"epochs, batch 32, {w.probes} probes with labels and masks, logging every epoch, "
            f"{args.rounds} round(s); training data: {TF_DATA[args.tf_data]}\n",
            "\n".join(lines) + "\n\nFixed cost:\n\n" + "\n".join(fixed),
        ]
        if args.batches:
            part += ["\nWhat the worker's job adds to training:\n"]
            part += ["\n".join(interference_table(records))]
        if not args.no_profile:
            part += ["\n".join(profile_table(records))]
        part += [""] + [f"- {t}: {'PASS' if passed else 'FAIL'}" for t, passed in ok.items()]
        print("\n".join(part) + "\n")
        report += [*part, ""]
        all_ok &= all(ok.values())
    load_end = os.getloadavg()
    if args.markdown:
        command = command_line("bench_fit.py", argv)
        write_section(args.markdown, args.section, "\n".join(report), command, load_start[0])
    print(
        f"load average (1 min) at start {load_start[0]:.1f}, at end {load_end[0]:.1f} "
        "(wall-time targets hold only on an idle machine)"
    )
    return 0 if all_ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
