"""Benchmark of `SaliencyCallback`'s whole epoch-end work against the unavoidable work.

What it measures
    For each workload (a small CNN on 64x64x3 probes, and `keras.applications.MobileNetV2` at
    96x96x3 with `weights=None`, both with 32 probes and a 10-way softmax head), the wall time of
    one logged epoch end, `cb.on_epoch_end(epoch, {})`: saliency maps (engine), smoothing,
    colormap, overlay and captions (rendering), the grid, the `tf.summary.image` writes of the
    overview grid and of the per-probe panels (PNG encoding), the scalars and the flush. The
    callback is driven through its Keras hooks (`set_model`, `on_train_begin`, `on_epoch_end`)
    with a temporary log directory, as `fit` would.

    The reference, measured in the same process and interleaved, is the work that cannot be
    avoided: a bare compiled `tf.GradientTape` batch over the same model and probes (gradient of
    the pre-softmax logit of the predicted class, as in `bench_engine.py`; Grad-CAM: gradient
    w.r.t. the last conv block, weights, ReLU and upsampling), returned to the host, PLUS
    `tf.summary.image` of exactly the pixels the callback writes (the overview grid and the
    panels it produced, captured from its writer) into a separate writer, and a flush; with the
    background tests on (the default), PLUS one compiled forward pass of their counterfactual
    batch (4 variants x the probes). The result is the **ratio** callback / reference; absolute
    times depend on the machine.

    Targets (from the issue): ratio <= 1.30 on the CNN and <= 1.15 on MobileNetV2 for the
    default method (vanilla gradients). Grad-CAM on the CNN is reported for information.

    Also printed per workload:
    - a breakdown of the epoch end, measured by timing the callback's own calls inside extra
      (instrumented) `on_epoch_end` runs: engine (`explain_prepared`), rendering
      (`Renderer.panels` + `Renderer.grid`), image summaries (overview and panels: PNG encoding
      and event serialisation; the PNG encoding alone is measured separately with one batched
      `tf.image.encode_png` per tag on the same arrays, as `tf.summary.image` does it), scalar
      summaries, flush, and the rest (captions, scalar values, checks); and how the excess over
      the reference splits (engine minus bare gradient, rendering, scalars, ...);
    - the pixels and bytes written per logged epoch (raw RGB and in the event file);
    - the explainer's tracing count after the first logged epoch and after the last one
      (equal: no retrace);
    - "what if" timings of cheaper ways to write the same content (fix candidates).

    `--fit` (part of the default full run; about 2 to 3 minutes on 2 CPU cores) measures the
    overhead in a realistic `fit`: 10,000 training images of 64x64x3 per epoch
    (`make_shortcut_data(10000, image_size=64)`), the small CNN (3 classes), 32 probes with
    labels and masks, the callback logging every epoch. One `fit` runs a warm-up epoch (with the
    callback, which traces) and then 2 x `--fit-epochs` epochs in which the callback is switched
    on and off in an ABBA pattern (off, on, on, off, off, on, ...), so slow drift cancels; the
    epoch time is taken between a last timing callback's `on_epoch_begin` and `on_epoch_end`.
    It prints the added wall time in % of the epoch without the callback (target < 2%); the
    process CPU time of the epochs and of the callback (information); and, less noisy, the
    directly timed `on_epoch_end` of the callback in % of the epoch (median / median, and
    fastest / fastest, the latter closest to an idle machine). When the epochs without the
    callback vary by more than twice the target, the verdict comes from the direct timing
    against the fastest epoch, and says so. A breakdown of the callback's epoch end is printed
    too (with masks it also writes the mask metrics: 70 scalars per epoch instead of 34).

How to run
    python benchmarks/bench_callback.py                      # full run: both workloads + fit
    python benchmarks/bench_callback.py --quick              # smoke run, about a minute
    python benchmarks/bench_callback.py --workload cnn       # cnn | mobilenet | all
    python benchmarks/bench_callback.py --method gradcam     # vanilla (default) | gradcam
    python benchmarks/bench_callback.py --fit                # only the realistic fit overhead
    python benchmarks/bench_callback.py --background         # only the background tests' cost
    python benchmarks/bench_callback.py --probes random      # uniform noise probes (worst PNG)
    python benchmarks/bench_callback.py --blocking           # on_epoch_end blocking per mode
    python benchmarks/bench_callback.py --fit-modes          # fit: worker vs inline vs off
    python benchmarks/bench_callback.py --growth             # 16/64/256 probes of 128x128
    python benchmarks/bench_callback.py [mode] --markdown docs/performance.md

    `--markdown PAGE` writes each table the run measured into its own section of the page
    (`bench_callback` for the epoch end, `bench_callback --background`, `bench_callback --fit`,
    `--blocking`, `--fit-modes`, `--growth`: see `_markdown.py`); the default full run writes
    the first three. `--growth-counts` and `--fit-images` shrink the runs (the tests use them).

    `--blocking` (issue #12): the time `on_epoch_end` blocks the training thread, with the
    background worker (default), inline, and inline without the timeline (the pre-#12 path),
    against the bare compiled gradient of the same probes in the same process, interleaved
    (target with the worker: <= 1.25x on the CNN and on MobileNetV2). `--fit-modes`: the epoch
    time of a real `fit` with the worker, inline and without the callback (on 2 cores the
    worker competes with training). `--growth`: per probe count (each in its own process),
    the blocking time, the whole step inline, the timeline's share, the event-file bytes per
    logged step and the peak RSS.

    Probes default to `make_shortcut_data` images (flat tinted backgrounds, a shape and 5%
    pixel noise) with their labels, which compress like ordinary photos; `--probes random` uses
    uniform noise, the worst case for PNG (the engine's cost does not depend on the pixels).

How to read it
    `ratio` = callback ms / reference ms (medians of interleaved runs, alternating which runs
    first); `min ratio` is the ratio of the fastest runs and `pair ratio` the median of the
    ratios of each interleaved pair, both less sensitive to other processes on the same cores.
    The first-call columns include tracing. Run on an otherwise idle machine: other processes
    add noise to both sides (interleaving cancels slow drift, not bursts), so
    rerun if the ratios look erratic (the per-run times are printed to judge the noise).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf
from _common import (
    NUM_PROBES,
    WORKLOADS,
    GradientReference,
    Workload,
    dir_bytes,
    environment,
    full_callback,
    make_probes,
    relative_diff,
    small_cnn,
    timed,
)
from _long_runs import bench_blocking, bench_fit_modes, bench_growth, blocking_table, growth_main
from _markdown import command_line, fmt_ms, load_average, table, write_section
from PIL import Image
from tensorboard.plugins.image import metadata as tb_image_metadata

from saliency_callback import GradCAM, Runtime, SaliencyCallback, make_shortcut_data

TARGETS = {"cnn": 1.30, "mobilenet": 1.15}
FIT_TARGET_PCT = 2.0
FIT_IMAGES = 10_000


# -- workloads --------------------------------------------------------------------------------


def make_method(name: str, workload: Workload) -> Any:
    return GradCAM(workload.gradcam_layer) if name == "gradcam" else name


# -- the reference: bare gradients + the same image summaries ---------------------------------


class Reference(GradientReference):
    """Bare compiled gradients and a separate summary writer (no callback code)."""

    def __init__(self, model: keras.Model, gradcam_layer: str, log_dir: str) -> None:
        super().__init__(model, gradcam_layer)
        self.writer = tf.summary.create_file_writer(log_dir)
        self.forward_fn = tf.function(lambda x: model(x, training=False))

    def forward(self, batch: tf.Tensor | None) -> None:
        """The background tests' unavoidable work: one compiled forward pass of their batch."""
        if batch is not None:
            self.forward_fn(batch).numpy()

    def gradients(self, method: str, x: tf.Tensor) -> np.ndarray:
        fn = self.gradcam_fn if method == "gradcam" else self.vanilla_fn
        return fn(x).numpy()

    def write(self, images: dict[str, np.ndarray], step: int) -> None:
        with self.writer.as_default():
            for tag, data in images.items():
                tf.summary.image(tag, data, step=step, max_outputs=len(data))
        self.writer.flush()

    def tracing_count(self) -> int:
        fns = (self.vanilla_fn, self.gradcam_fn)
        return sum(int(fn.experimental_get_tracing_count()) for fn in fns)


# -- instrumentation (benchmark-side wrappers; the package is not modified) --------------------


@contextlib.contextmanager
def patched(obj: Any, name: str, wrapper: Callable[..., Any]) -> Iterator[None]:
    """Shadows a bound method by an instance attribute (also on frozen dataclasses)."""
    vars(obj)[name] = wrapper
    try:
        yield
    finally:
        del vars(obj)[name]


@contextlib.contextmanager
def capture_images(cb: SaliencyCallback, store: dict[str, np.ndarray]) -> Iterator[None]:
    """Records the arrays the callback PNG-encodes (its writer's `encode`), named by the tag
    each is then written under (`write_pngs`, in the order they were encoded)."""
    encode, write_pngs = cb.writer.encode, cb.writer.write_pngs
    pending: collections.deque[np.ndarray] = collections.deque()

    def recording_encode(data: np.ndarray) -> list[bytes]:
        pending.append(np.array(data, copy=True))
        return encode(data)

    def recording_write(tag: str, pngs: list[bytes], size: tuple[int, int], *a: Any) -> None:
        data = pending.popleft()
        while data.shape[1:3] != tuple(size) or len(data) != len(pngs):  # one left unwritten
            data = pending.popleft()  # (over the size cap): not in the reference either
        store[tag] = data
        write_pngs(tag, pngs, size, *a)

    with (
        patched(cb.writer, "encode", recording_encode),
        patched(cb.writer, "write_pngs", recording_write),
    ):
        yield


@contextlib.contextmanager
def instrumented(cb: SaliencyCallback, times: dict[str, float]) -> Iterator[None]:
    """Adds the wall time of the callback's inner calls to `times` (piece -> ms)."""
    assert cb._explainer is not None

    def timer(piece: Callable[[tuple[Any, ...]], str], fn: Callable[..., Any]) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[piece(args)] += (time.perf_counter() - start) * 1e3

        return wrapper

    def write_piece(args: tuple[Any, ...]) -> str:
        return f"image summary writes: {args[0].split('/')[-1]}"

    with contextlib.ExitStack() as stack:
        stack.enter_context(
            patched(
                cb._explainer,
                "explain_prepared",
                timer(lambda a: "engine", cb._explainer.explain_prepared),
            )
        )
        stack.enter_context(
            patched(cb.renderer, "panels", timer(lambda a: "render: panels", cb.renderer.panels))
        )
        stack.enter_context(
            patched(cb.renderer, "grid", timer(lambda a: "render: grid", cb.renderer.grid))
        )
        stack.enter_context(
            patched(cb.writer, "encode", timer(lambda a: "PNG encoding", cb.writer.encode))
        )
        stack.enter_context(
            patched(cb.writer, "write_pngs", timer(write_piece, cb.writer.write_pngs))
        )
        stack.enter_context(
            patched(cb.writer, "scalars", timer(lambda a: "scalar summaries", cb.writer.scalars))
        )
        stack.enter_context(patched(cb.writer, "flush", timer(lambda a: "flush", cb.writer.flush)))
        yield


# -- measurement ------------------------------------------------------------------------------


@dataclass
class Row:
    workload: str
    method: str
    callback_ms: float
    reference_ms: float
    callback_min_ms: float
    reference_min_ms: float
    callback_first_ms: float
    reference_first_ms: float
    traces_first: int
    traces_after: int
    target: float | None
    check: float
    pixels: int
    raw_bytes: int
    event_bytes_per_epoch: float
    breakdown: dict[str, float] = field(default_factory=dict)
    breakdown_total_ms: float = 0.0
    pair_ratio: float = float("nan")
    reference_parts: dict[str, float] = field(default_factory=dict)
    whatif: list[tuple[str, float, str]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.callback_ms / self.reference_ms

    @property
    def min_ratio(self) -> float:
        return self.callback_min_ms / self.reference_min_ms

    @property
    def result(self) -> str:
        if self.target is None:
            return "info"
        return "PASS" if self.ratio <= self.target else "FAIL"


def bench_case(
    workload: Workload,
    model: keras.Model,
    method: str,
    probes: tuple[np.ndarray, np.ndarray],
    repeats: int,
    target: float | None,
    whatif: bool,
) -> Row:
    images, labels = probes
    tmp = tempfile.mkdtemp(prefix="bench_callback_")
    try:
        cb = SaliencyCallback(  # inline: the whole epoch-end work (see --blocking for the worker)
            images,
            labels=labels,
            log_dir=tmp,
            method=make_method(method, workload),
            runtime=Runtime(strict=True, background_writer=False),
        )
        ref = Reference(model, workload.gradcam_layer, os.path.join(tmp, "reference"))
        x = tf.constant(images)
        cb.set_model(model)
        cb.on_train_begin()
        assert cb._explainer is not None
        written: dict[str, np.ndarray] = {}
        epoch = 0

        def run_callback() -> None:
            nonlocal epoch
            cb.on_epoch_end(epoch, {})
            epoch += 1

        # With the background tests on (the default), their forward pass is unavoidable too.
        background = cb._background
        batch = tf.constant(background.batch) if background is not None else None

        def run_reference() -> None:
            ref.gradients(method, x)
            ref.forward(batch)
            ref.write(written, epoch)

        with capture_images(cb, written):
            callback_first, _, _ = timed(run_callback)  # traces the engine, opens the event file
        traces_first = cb._explainer.tracing_count
        reference_first, _, _ = timed(run_reference)  # traces the reference, opens its file
        result = cb._explainer.explain_prepared(*cb._prepared)  # type: ignore[misc]
        expected = ref.gradients(method, x)
        check = (
            relative_diff(result.attributions, expected)
            if result.attributions.size == expected.size
            else float("nan")
        )
        run_callback()  # second warm-up of both sides
        run_reference()
        size_before, logged_before = dir_bytes(cb.writer.path), epoch
        callback_ms: list[float] = []
        reference_ms: list[float] = []
        for i in range(repeats):
            if i % 2 == 0:
                callback_ms.append(timed(run_callback)[0])
                reference_ms.append(timed(run_reference)[0])
            else:
                reference_ms.append(timed(run_reference)[0])
                callback_ms.append(timed(run_callback)[0])
        event_per_epoch = (dir_bytes(cb.writer.path) - size_before) / (epoch - logged_before)
        traces_after = cb._explainer.tracing_count

        # Breakdown: instrumented runs (after the timed ones, so those carry no wrappers).
        # The reference's two parts are timed alongside, to attribute the excess.
        pieces: dict[str, list[float]] = defaultdict(list)
        ref_parts: dict[str, list[float]] = defaultdict(list)
        totals: list[float] = []
        for _ in range(max(3, repeats // 2)):
            times: dict[str, float] = defaultdict(float)
            with instrumented(cb, times):
                totals.append(timed(run_callback)[0])
            ref_parts["bare gradient"].append(timed(lambda: ref.gradients(method, x))[0])
            if batch is not None:
                ref_parts["background forward pass"].append(timed(lambda: ref.forward(batch))[0])
            ref_parts["image summaries + flush"].append(timed(lambda: ref.write(written, epoch))[0])
            for name, ms in times.items():
                pieces[name].append(ms)
            pieces["other (captions, scalar values, checks)"].append(
                totals[-1] - sum(times.values())
            )
        png_ms = [timed(lambda: encode_all(written))[0] for _ in range(max(3, repeats // 2))]
        breakdown = {name: statistics.median(v) for name, v in pieces.items()}
        breakdown["  of the image summaries: PNG encoding alone"] = statistics.median(png_ms)
        pixels = sum(int(np.prod(a.shape[:3])) for a in written.values())
        raw = sum(int(a.size) for a in written.values())
        print(
            f"  {method:<8} callback {statistics.median(callback_ms):8.1f} ms  reference "
            f"{statistics.median(reference_ms):8.1f} ms  ratio "
            f"{statistics.median(callback_ms) / statistics.median(reference_ms):5.2f}  "
            f"(runs: {' '.join(f'{t:.0f}' for t in callback_ms)} | "
            f"{' '.join(f'{t:.0f}' for t in reference_ms)})",
            flush=True,
        )
        row = Row(
            workload.name,
            method,
            statistics.median(callback_ms),
            statistics.median(reference_ms),
            min(callback_ms),
            min(reference_ms),
            callback_first,
            reference_first,
            traces_first,
            traces_after,
            target,
            check,
            pixels,
            raw,
            event_per_epoch,
            breakdown,
            statistics.median(totals),
            statistics.median(c / r for c, r in zip(callback_ms, reference_ms, strict=True)),
        )
        row.reference_parts = {k: statistics.median(v) for k, v in ref_parts.items()}
        if whatif:
            row.whatif = what_if(cb, written, result, max(3, repeats // 2), tmp)
        cb.on_train_end()
        return row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def encode_all(images: dict[str, np.ndarray], compression: int = -1) -> int:
    """PNG-encodes the images as `tf.summary.image` does (one batched op per tag, which spreads
    the images of a batch over the cores); returns the encoded bytes."""
    total = 0
    for data in images.values():
        pngs = tf.image.encode_png(data, compression=compression).numpy()
        total += sum(len(png) for png in pngs)
    return total


def what_if(
    cb: SaliencyCallback,
    written: dict[str, np.ndarray],
    result: Any,
    repeats: int,
    tmp: str,
) -> list[tuple[str, float, str]]:
    """Times cheaper ways of writing the same content (fix candidates), on a scratch writer."""
    writer = tf.summary.create_file_writer(os.path.join(tmp, "whatif"))
    overview = {k: v for k, v in written.items() if k.endswith("overview")}
    panels = {k: v for k, v in written.items() if not k.endswith("overview")}
    scalars = cb._scalars(result, 0, None, {})
    tags = list(scalars)
    values = np.asarray(list(scalars.values()), np.float32)

    @tf.function(
        input_signature=[tf.TensorSpec((len(tags),), tf.float32), tf.TensorSpec((), tf.int64)]
    )
    def write_scalars(v: tf.Tensor, step: tf.Tensor) -> None:
        for i, tag in enumerate(tags):
            tf.summary.scalar(tag, v[i], step=step)

    image_metadata = tb_image_metadata.create_summary_metadata(display_name=None, description="")

    def summaries(images: dict[str, np.ndarray]) -> None:
        with writer.as_default():
            for tag, data in images.items():
                tf.summary.image(tag, data, step=0, max_outputs=len(data))

    def eager_scalars() -> None:
        with writer.as_default():
            for tag, value in scalars.items():
                tf.summary.scalar(tag, value, step=0)

    def compiled_scalars() -> None:
        with writer.as_default():
            write_scalars(values, tf.constant(0, tf.int64))

    def encoded(images: dict[str, np.ndarray], compression: int) -> None:
        """Same summaries as `tf.summary.image`, from PNGs encoded here (`tf.summary.write`)."""
        with writer.as_default():
            for tag, data in images.items():
                pngs = tf.image.encode_png(data, compression=compression)
                dims = tf.stack([tf.as_string(data.shape[2]), tf.as_string(data.shape[1])])
                tensor = tf.concat([dims, pngs], axis=0)
                tf.summary.write(tag, tensor, step=0, metadata=image_metadata)

    def half_overview() -> None:
        """Panels in full, the overview at half resolution (bilinear), compression=1."""
        grid = next(iter(overview.values()))[0]
        small = Image.fromarray(grid).resize(
            (grid.shape[1] // 2, grid.shape[0] // 2), Image.Resampling.BILINEAR
        )
        encoded({**panels, "half_overview": np.asarray(small)[None]}, 1)

    attributions = np.asarray(result.attributions)

    def per_channel_max() -> np.ndarray:
        out = np.abs(attributions[..., 0])
        for c in range(1, attributions.shape[-1]):
            np.maximum(out, np.abs(attributions[..., c]), out=out)
        return out

    assert np.array_equal(per_channel_max(), np.abs(attributions).max(axis=-1))
    sizes = {lvl: encode_all(written, lvl) for lvl in (-1, 1)}
    n_scalars = len(tags)
    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("image summaries, overview + panels (now)", lambda: summaries(written), ""),
        ("image summaries, panels only", lambda: summaries(panels), ""),
        ("image summaries, overview only", lambda: summaries(overview), ""),
        ("PNG encode all, zlib default (now)", lambda: encode_all(written), f"{sizes[-1]} B"),
        ("PNG encode all, compression=1", lambda: encode_all(written, 1), f"{sizes[1]} B"),
        ("pre-encoded write, default zlib", lambda: encoded(written, -1), "same bytes as now"),
        ("pre-encoded write, compression=1", lambda: encoded(written, 1), ""),
        ("  same, panels only", lambda: encoded(panels, 1), ""),
        ("  same, panels + half-resolution overview", half_overview, ""),
        (f"{n_scalars} scalars, eager tf.summary.scalar (now)", eager_scalars, ""),
        (f"{n_scalars} scalars, one tf.function", compiled_scalars, ""),
        (
            "max_abs reduction: np.abs(a).max(axis=-1) (now)",
            lambda: np.abs(attributions).max(axis=-1),
            "engine, and again in _scalars with masks",
        ),
        ("max_abs reduction: np.maximum per channel", per_channel_max, "identical result"),
    ]
    compiled_scalars()  # trace once
    out = []
    try:
        for name, fn, note in cases:
            fn()
            ms = statistics.median(timed(fn)[0] for _ in range(repeats))
            out.append((name, ms, note))
    finally:
        writer.close()
    return out


def bench_workload(
    workload: Workload, methods: list[str], quick: bool, probes_kind: str, whatif: bool
) -> list[Row]:
    print(f"\n== {workload.name}: building the model", flush=True)
    model = workload.build()
    probes = make_probes(workload.size, probes_kind)
    repeats = 5 if quick else 15
    rows = []
    for method in methods:
        target = TARGETS[workload.name] if method == methods[0] else None
        rows.append(
            bench_case(workload, model, method, probes, repeats, target, whatif and not quick)
        )
    return rows


# -- realistic fit overhead -------------------------------------------------------------------


class Gate(keras.callbacks.Callback):
    """Forwards every hook to `inner`, but `on_epoch_end` only on the epochs in `enabled`."""

    def __init__(self, inner: SaliencyCallback, enabled: set[int]) -> None:
        super().__init__()
        self.inner = inner
        self.enabled = enabled
        self.epoch_end_ms: dict[int, float] = {}
        self.epoch_end_cpu_ms: dict[int, float] = {}
        self.pieces: dict[int, dict[str, float]] = {}

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self.inner.set_params(params)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.inner.on_train_begin(logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.inner.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch in self.enabled:
            times: dict[str, float] = defaultdict(float)
            with instrumented(self.inner, times):
                ms, cpu_ms, _ = timed(lambda: self.inner.on_epoch_end(epoch, logs))
            self.epoch_end_cpu_ms[epoch] = cpu_ms
            self.epoch_end_ms[epoch] = ms
            times["other (captions, scalar values, checks)"] = ms - sum(times.values())
            self.pieces[epoch] = dict(times)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.inner.on_train_end(logs)


class EpochTimer(keras.callbacks.Callback):
    """Wall and process CPU time of each epoch, from `on_epoch_begin` to `on_epoch_end`.

    Placed last, so an epoch's time includes the other callbacks' `on_epoch_end`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ms: dict[int, float] = {}
        self.cpu_ms: dict[int, float] = {}
        self._start = (0.0, 0.0)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.ms[epoch] = (time.perf_counter() - self._start[0]) * 1e3
        self.cpu_ms[epoch] = (time.process_time() - self._start[1]) * 1e3


def bench_fit(epochs_each: int, images: int = FIT_IMAGES) -> str:
    """Prints the fit overhead; returns its Markdown table."""
    print(
        f"\n== fit: {images} images 64x64x3 per epoch, small CNN (3 classes), batch 32, "
        f"{NUM_PROBES} probes with labels and masks, callback logging every epoch",
        flush=True,
    )
    train = make_shortcut_data(images, image_size=64, seed=0)
    probes = make_shortcut_data(NUM_PROBES, image_size=64, seed=1)
    model = small_cnn((64, 64, 3), num_classes=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Epoch 0: warm-up with the callback (traces). Then ABBA: off, on, on, off, off, on, ...
    schedule = [True]
    for i in range(epochs_each):
        schedule += [False, True] if i % 2 == 0 else [True, False]
    enabled = {e for e, on in enumerate(schedule) if on}
    tmp = tempfile.mkdtemp(prefix="bench_callback_fit_")
    try:
        cb = full_callback(probes, tmp)
        gate = Gate(cb, enabled)
        timer = EpochTimer()
        model.fit(
            train.images,
            train.labels,
            batch_size=32,
            epochs=len(schedule),
            verbose=0,
            callbacks=[gate, timer],
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    on = [timer.ms[e] for e in range(1, len(schedule)) if schedule[e]]
    off = [timer.ms[e] for e in range(1, len(schedule)) if not schedule[e]]
    direct = [gate.epoch_end_ms[e] for e in range(1, len(schedule)) if schedule[e]]
    timed_epochs = [e for e in range(1, len(schedule)) if schedule[e]]
    for e, on_ in enumerate(schedule):
        extra = f"  (callback on_epoch_end {gate.epoch_end_ms[e]:.0f} ms)" if on_ else ""
        label = "warm-up, " if e == 0 else ""
        print(
            f"  epoch {e}: {label}callback {'on ' if on_ else 'off'}  {timer.ms[e] / 1e3:7.2f} s"
            + extra
        )
    parts = {
        name: statistics.median(gate.pieces[e].get(name, 0.0) for e in timed_epochs)
        for name in gate.pieces[timed_epochs[0]]
    }
    print(f"  callback epoch end, breakdown (median over epochs {timed_epochs}):")
    for name, part_ms in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<44} {part_ms:8.1f} ms")
    med_on, med_off = statistics.median(on), statistics.median(off)
    added = (med_on - med_off) / med_off * 100
    spread = (max(off) - min(off)) / med_off * 100 if len(off) > 1 else float("nan")
    reliable = spread <= 2 * FIT_TARGET_PCT
    cpu_on = statistics.median(timer.cpu_ms[e] for e in timed_epochs)
    cpu_off = statistics.median(timer.cpu_ms[e] for e in range(1, len(schedule)) if not schedule[e])
    cpu_cb = statistics.median(gate.epoch_end_cpu_ms[e] for e in timed_epochs)
    direct_median = statistics.median(direct) / med_off * 100
    direct_fastest = min(direct) / min(off) * 100
    verdict = "PASS" if added < FIT_TARGET_PCT else "FAIL"
    if not reliable:
        verdict += (
            f" (UNRELIABLE: the epochs without the callback vary by {spread:.0f}%, more than twice"
            " the target)"
        )
    direct_verdict = "PASS" if direct_fastest < FIT_TARGET_PCT else "FAIL"
    print(
        f"  wall time, median epoch: with callback {med_on / 1e3:.2f} s, without "
        f"{med_off / 1e3:.2f} s (fastest without: {min(off) / 1e3:.2f} s; spread of the epochs "
        f"without: {spread:.1f}%)\n"
        f"  process CPU time, median epoch: with callback {cpu_on / 1e3:.2f} s, without "
        f"{cpu_off / 1e3:.2f} s: {(cpu_on - cpu_off) / cpu_off * 100:+.2f}%; the callback's "
        f"on_epoch_end used {cpu_cb:.0f} ms CPU = {cpu_cb / cpu_off * 100:.2f}% (information)\n"
        f"  added by the callback, from epoch wall times: {added:+.2f}%  "
        f"(target < {FIT_TARGET_PCT:.0f}%) -> {verdict}\n"
        f"  added by the callback, its on_epoch_end timed directly: median "
        f"{statistics.median(direct):.0f} ms = {direct_median:.2f}% of the median epoch; fastest "
        f"{min(direct):.0f} ms = {direct_fastest:.2f}% of the fastest epoch (closest to an idle "
        f"machine) -> {direct_verdict}"
    )
    final = verdict if reliable else direct_verdict
    source = "epoch wall times" if reliable else "direct timing / fastest epoch (epochs too noisy)"
    print(f"  fit overhead target (< {FIT_TARGET_PCT:.0f}%): {final[:4]}  (from {source})")
    off_cpu = f"{cpu_off / 1e3:.2f} s CPU"
    return table(
        ["measure", "value"],
        [
            ["training images per epoch", f"{images}"],
            [
                "epoch without the callback (median; fastest)",
                f"{med_off / 1e3:.2f} s ({off_cpu}); {min(off) / 1e3:.2f} s",
            ],
            [
                "epoch with the callback (median)",
                f"{med_on / 1e3:.2f} s ({cpu_on / 1e3:.2f} s CPU)",
            ],
            ["spread of the epochs without the callback", f"{spread:.1f}%"],
            ["added, from epoch wall times", f"{added:+.2f}%"],
            ["on_epoch_end timed directly (median)", f"{fmt_ms(statistics.median(direct))}"],
            ["  in % of the median epoch", f"{direct_median:.2f}%"],
            ["on_epoch_end timed directly (fastest)", f"{fmt_ms(min(direct))}"],
            ["  in % of the fastest epoch", f"{direct_fastest:.2f}%"],
            [f"target < {FIT_TARGET_PCT:.0f}%", f"{final[:4]} (from {source})"],
        ],
    )


# -- output -----------------------------------------------------------------------------------


def print_tables(rows: list[Row]) -> None:
    print("\nTiming (median of interleaved runs; ratio = callback epoch end / reference)")
    header = (
        f"{'workload':<10} {'method':<8} {'callback ms':>11} {'ref ms':>8} {'ratio':>6} "
        f"{'target':>7} {'result':>6} {'min ratio':>9} {'pair ratio':>10} {'cb 1st ms':>10} "
        f"{'ref 1st ms':>10}  {'check':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        target = f"<={r.target:.2f}" if r.target is not None else "-"
        print(
            f"{r.workload:<10} {r.method:<8} {r.callback_ms:>11.1f} {r.reference_ms:>8.1f} "
            f"{r.ratio:>6.2f} {target:>7} {r.result:>6} {r.min_ratio:>9.2f} {r.pair_ratio:>10.2f} "
            f"{r.callback_first_ms:>10.0f} {r.reference_first_ms:>10.0f}  {r.check:>7.1e}"
        )
    print("\nPixels written and retracing")
    header = (
        f"{'workload':<10} {'method':<8} {'pixels/epoch':>12} {'raw RGB B':>10} "
        f"{'event B/epoch':>13} {'traces after 1st':>16} {'traces after last':>17}  retrace"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        retrace = "no" if r.traces_after == r.traces_first else "YES"
        print(
            f"{r.workload:<10} {r.method:<8} {r.pixels:>12} {r.raw_bytes:>10} "
            f"{r.event_bytes_per_epoch:>13.0f} {r.traces_first:>16} {r.traces_after:>17}  "
            f"{retrace}"
        )
    for r in rows:
        print(
            f"\nBreakdown of the epoch end, {r.workload}/{r.method} (median of instrumented runs, "
            f"total {r.breakdown_total_ms:.1f} ms; reference {r.reference_ms:.1f} ms)"
        )
        order = sorted(r.breakdown.items(), key=lambda kv: (kv[0].startswith("  "), -kv[1]))
        for name, part_ms in order:
            print(f"  {name:<46} {part_ms:8.1f} ms  {part_ms / r.breakdown_total_ms:6.1%}")
        b, rp = r.breakdown, r.reference_parts
        images = sum(
            ms for k, ms in b.items() if k.startswith(("image summary", "PNG encoding", "flush"))
        )
        excess = {
            "engine - bare gradient": b["engine"] - rp["bare gradient"],
            "image summaries + flush - reference's": images - rp["image summaries + flush"],
            "rendering (panels + grid)": b["render: panels"] + b["render: grid"],
            "scalar summaries": b["scalar summaries"],
            "other - background forward pass": b["other (captions, scalar values, checks)"]
            - rp.get("background forward pass", 0.0),
        }
        ref_total = sum(rp.values())
        print(
            f"Excess over the reference (reference parts: bare gradient "
            f"{rp['bare gradient']:.1f} ms, image summaries + flush "
            f"{rp['image summaries + flush']:.1f} ms, background forward pass "
            f"{rp.get('background forward pass', 0.0):.1f} ms; excess "
            f"{r.breakdown_total_ms - ref_total:+.1f} ms = ratio "
            f"{r.breakdown_total_ms / ref_total:.2f} in these runs)"
        )
        for name, ms in excess.items():
            print(f"  {name:<46} {ms:+8.1f} ms  {ms / ref_total:+6.1%} of the reference")
        if r.whatif:
            print(f"What if (same content, {r.workload}/{r.method}; fix candidates)")
            for name, ms, note in r.whatif:
                print(f"  {name:<46} {ms:8.1f} ms  {note}")
    targeted = [r for r in rows if r.target is not None]
    failed = [r for r in targeted if r.result == "FAIL"]
    print(
        f"\nratio targets met: {len(targeted) - len(failed)}/{len(targeted)}"
        + (
            "  (failing: " + ", ".join(f"{r.workload}/{r.method}" for r in failed) + ")"
            if failed
            else ""
        )
    )
    retraced = [r for r in rows if r.traces_after != r.traces_first]
    print(f"no retrace after the first logged epoch: {'PASS' if not retraced else 'FAIL'}")


def markdown(rows: list[Row]) -> str:
    """The epoch-end table of docs/performance.md and the breakdown, from this run's rows."""
    main = table(
        [
            f"workload ({NUM_PROBES} probes)",
            "method",
            "callback",
            "reference",
            "ratio",
            "ratio of fastest runs",
            "target",
            "pixels per logged epoch",
            "event file per logged epoch",
            "retrace",
        ],
        [
            [
                WORKLOADS[r.workload].title,
                "Grad-CAM" if r.method == "gradcam" else r.method,
                fmt_ms(r.callback_ms),
                fmt_ms(r.reference_ms),
                f"{r.ratio:.2f}",
                f"{r.min_ratio:.2f}",
                f"≤ {r.target:.2f}" if r.target is not None else "",
                f"{r.pixels / 1e6:.2f} M",
                f"{r.event_bytes_per_epoch / 1e6:.2f} MB",
                "no" if r.traces_after == r.traces_first else "YES",
            ]
            for r in rows
        ],
    )
    parts = list(dict.fromkeys(k for r in rows for k in r.breakdown))
    parts.sort(key=lambda k: (k.startswith("  "), -rows[0].breakdown.get(k, 0.0)))
    breakdown = table(
        ["part of the epoch end", *(f"{r.workload}, {r.method}" for r in rows)],
        [
            [
                part.strip(),
                *(fmt_ms(r.breakdown[part]) if part in r.breakdown else "" for r in rows),
            ]
            for part in parts
        ]
        + [["total (instrumented runs)", *(fmt_ms(r.breakdown_total_ms) for r in rows)]],
    )
    return f"{main}\nBreakdown (medians of instrumented runs):\n\n{breakdown}"


# -- main -------------------------------------------------------------------------------------


def bench_background(workload: Workload, repeats: int) -> list[str]:
    """The background tests' forward pass against the vanilla gradient pass, same probes.

    The counterfactual batch (only_fg, only_bg, mixed_rand, mixed_same of the 32 probes, built
    once by `BackgroundTest.build`) goes through `Explainer.predict` (compiled, batched,
    forward only); the reference is the bare compiled vanilla gradient of the 32 probes.
    Interleaved, medians.
    """
    from saliency_callback.maps.engine import Explainer
    from saliency_callback.shortcuts.background import BackgroundTest

    data = make_shortcut_data(NUM_PROBES, image_size=workload.size, num_classes=6, seed=1)
    model = workload.build()
    reference = GradientReference(model, workload.gradcam_layer)
    explainer = Explainer(model, "vanilla")
    test = BackgroundTest.build(data.images, data.masks, data.labels)
    batch = test.batch
    x = tf.convert_to_tensor(data.images)
    explainer.predict(batch)  # trace
    reference.vanilla_fn(x).numpy()
    traces = explainer.tracing_count
    forward_ms, gradient_ms = [], []
    for _ in range(repeats):
        forward_ms.append(timed(lambda: explainer.predict(batch))[0])
        gradient_ms.append(timed(lambda: reference.vanilla_fn(x).numpy())[0])
    fwd, grad = float(np.median(forward_ms)), float(np.median(gradient_ms))
    per_variant = fwd / len(test.variants)
    return [
        workload.title,
        f"{len(test.variants)} x {NUM_PROBES} ({', '.join(test.variants)})",
        fmt_ms(fwd),
        fmt_ms(grad),
        f"{fwd / grad:.2f}",
        f"{per_variant / grad:.2f}",
        f"{explainer.tracing_count - traces}",
    ]


BACKGROUND_HEADER = [
    "workload",
    "counterfactual images",
    "forward pass",
    f"vanilla gradient ({NUM_PROBES})",
    "ratio",
    "per variant",
    "retraces",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no fit, no what-if")
    parser.add_argument("--workload", choices=["cnn", "mobilenet", "all"], default="all")
    parser.add_argument(
        "--method",
        choices=["vanilla", "gradcam"],
        default="vanilla",
        help="method of the targeted rows (gradcam on the CNN is always added for information)",
    )
    parser.add_argument("--probes", choices=["shortcut", "random"], default="shortcut")
    parser.add_argument("--fit", action="store_true", help="only the realistic fit overhead")
    parser.add_argument(
        "--fit-epochs", type=int, default=3, help="epochs with and without the callback each"
    )
    parser.add_argument(
        "--background", action="store_true", help="only the background tests' forward pass"
    )
    parser.add_argument(
        "--blocking", action="store_true", help="only on_epoch_end's blocking time per mode"
    )
    parser.add_argument("--fit-modes", action="store_true", help="only fit: worker vs inline")
    parser.add_argument("--fit-images", type=int, default=FIT_IMAGES)
    parser.add_argument("--growth", action="store_true", help="only the probe-growth table")
    parser.add_argument(
        "--growth-counts", type=int, nargs="+", default=[16, 64, 256], help="probe counts"
    )
    parser.add_argument("--growth-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--markdown", help="write each table measured into its section of this page"
    )
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    if args.growth_one:
        growth_main(args.growth_one, args.repeats or 3)
        return 0
    load_start = load_average()
    print(
        f"{environment()}; {NUM_PROBES} probes ({args.probes}), "
        "callback defaults (target='predicted', sigma=1, min_tile=64, max_tile=160)"
    )
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    sections = run_modes(args, names)  # section name -> Markdown
    for text in sections.values():
        print("\n" + text)
    if args.markdown:
        command = command_line("bench_callback.py", argv)
        for name, text in sections.items():
            write_section(args.markdown, name, text, command, load_start)
    print(f"\nload average at the end: {load_average():.1f}")
    return 0


def run_modes(args: argparse.Namespace, names: list[str]) -> dict[str, str]:
    """Runs what the flags ask for; returns the Markdown of each docs section it measured."""
    if args.fit:
        return {"bench_callback --fit": bench_fit(args.fit_epochs, args.fit_images)}
    if args.fit_modes:
        text = bench_fit_modes(args.fit_images, 2, args.repeats or 2)
        return {"bench_callback --fit-modes": text}
    if args.growth:
        return {"bench_callback --growth": bench_growth(args.growth_counts, args.repeats or 3)}
    if args.blocking:
        medians = {
            name: bench_blocking(WORKLOADS[name], args.repeats or 9, args.probes) for name in names
        }
        return {"bench_callback --blocking": blocking_table(medians)}
    background = [bench_background(WORKLOADS[name], 5 if args.quick else 20) for name in names]
    sections = {"bench_callback --background": table(BACKGROUND_HEADER, background)}
    if args.background:
        return sections
    rows: list[Row] = []
    for name in names:
        methods = [args.method]
        if name == "cnn" and args.method != "gradcam":
            methods.append("gradcam")
        rows += bench_workload(WORKLOADS[name], methods, args.quick, args.probes, True)
    print_tables(rows)
    sections["bench_callback"] = markdown(rows)
    if not args.quick:
        sections["bench_callback --fit"] = bench_fit(args.fit_epochs, args.fit_images)
    return sections


if __name__ == "__main__":
    sys.exit(main())
