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
import os
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
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
    make_probes,
    relative_diff,
    timed,
)
from _fit_runs import BACKGROUND_HEADER, FIT_IMAGES, bench_background, bench_fit
from _hooks import capture_images, instrumented
from _long_runs import bench_blocking, bench_fit_modes, bench_growth, blocking_table, growth_main
from _markdown import command_line, fmt_ms, load_average, table, write_section
from _what_if import encode_all, what_if

from saliency_callback import GradCAM, Runtime, SaliencyCallback

TARGETS = {"cnn": 1.30, "mobilenet": 1.15}


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
