"""Benchmark of the saliency engine against a bare compiled `tf.GradientTape` reference.

What it measures
    For each workload (a small CNN on 64x64x3 probes, and `keras.applications.MobileNetV2` at
    96x96x3 with `weights=None`, both with 32 probes and a 10-way softmax head) and each method,
    the wall time of one engine call, `Explainer(model, method, target="predicted")(probes)`,
    and of the cheapest honest hand-written TensorFlow code computing the same attributions,
    measured in the same process and interleaved. The result is the **ratio** engine/reference;
    absolute times depend on the machine and are printed only to show the scale.

    The references are `@tf.function`s with a fixed input signature over
    `keras.Model(model.inputs, model.layers[-1].input)` followed by a matmul with the Dense
    head's kernel (the pre-softmax logits), the target being the argmax of those logits:

    - vanilla: 1 call over the 32 probes: the gradient of the gathered logit, the argmax taken
      from the same forward pass.
    - smoothgrad (20 samples, noise 0.15 of each image's range): one forward pass for the
      targets, then 20 calls of 32 noisy copies, summed on the host (same batch as the engine's
      `batch_size=32`). The full run also times a fused reference, 1 call over all 640 noisy
      copies, against the engine with `batch_size=640`, and says which reference is fastest.
    - integrated_gradients (32 steps, black baseline, midpoint rule): likewise, 1 forward pass
      plus 32 calls of 32 path points (full run: 1 call of 1024 vs the engine with
      `batch_size=1024`). For information only.
    - gradcam (the last conv block): 1 call over the 32 probes: gradient of the logit w.r.t. the
      conv activations, channel weights, ReLU and bilinear upsampling. For information only.

    The engine's time includes everything a user pays: input validation, the compiled steps,
    host transfers, the per-image sum of contributions, channel reduction and normalisation.
    It is given the probes as a numpy array, as users pass them; the reference gets them as a
    `tf.Tensor` made once (its cheapest case), returns host (numpy) gradients and does no
    post-processing.

Methodology
    Each engine/reference pair is called once to trace and warm up (reported separately as the
    first-call time), then called `repeats` times, alternating which runs first, and the median
    is reported (`ratio`, which decides `result`). Two more ratios help when other processes
    compete for the cores: `min` is the ratio of the fastest runs, and `cpu` the ratio of the
    median process CPU time (all threads), which measures work rather than latency and barely
    moves with contention. `check` is the largest
    difference between the engine's raw attributions and the reference's, relative to the
    reference's largest magnitude (it shows both compute the same thing; the SmoothGrad
    reference draws the same seeded noise as the engine). The tracing count of each explainer
    is printed after warm-up and after the timed runs: equal counts mean no retrace.

How to run
    python benchmarks/bench_engine.py                    # full run, both workloads
    python benchmarks/bench_engine.py --quick            # smoke run, 1 to 2 minutes
    python benchmarks/bench_engine.py --workload cnn     # one workload (cnn | mobilenet | all)
    python benchmarks/bench_engine.py --profile          # also cProfile one engine call each
    python benchmarks/bench_engine.py --memory           # peak RSS of a large SmoothGrad call
    python benchmarks/bench_engine.py --markdown docs/performance.md   # also write its table

How to read it
    `ratio` = engine ms / reference ms; 1.00 means no overhead over bare TensorFlow. `target`
    is the goal from the issue (<= 1.10 for vanilla and SmoothGrad; `info` rows have none) and
    `result` says whether the ratio meets it. Run on an otherwise idle machine; other processes
    on the same cores add noise to both sides (interleaving cancels slow drift, not bursts), so
    rerun if the ratios look erratic.

    `--memory` runs SmoothGrad with 50 samples on 64 probes of 224x224x3 with `batch_size=32`
    on a small strided CNN (about 30 s; `--workload mobilenet` uses MobileNetV2 at 224 instead,
    about 2 minutes on 2 cores, and `--workload all` both) and prints the peak resident set size
    (`ru_maxrss`) before and after, next to what materialising all noisy copies at once would
    take; the check passes when the peak stays under 4 GiB, far from 24 GB.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
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
    environment,
    relative_diff,
    timed,
)
from _engine_memory import bench_memory
from _markdown import command_line, fmt_ms, load_average, table, write_section

from saliency_callback import (
    Explainer,
    GradCAM,
    IntegratedGradients,
    SmoothGrad,
    Vanilla,
)

SMOOTH_SAMPLES = 20
SMOOTH_LEVEL = 0.15
SMOOTH_SEED = 0
IG_STEPS = 32
TARGET = 1.10


# -- the bare TensorFlow reference ------------------------------------------------------------


class Reference(GradientReference):
    """The bare reference of every method: also SmoothGrad and IG, as loops and fused."""

    def __init__(self, model: keras.Model, gradcam_layer: str) -> None:
        super().__init__(model, gradcam_layer)
        shape = self.shape
        bank = np.random.default_rng(SMOOTH_SEED).standard_normal((SMOOTH_SAMPLES, *shape))
        self.bank = tf.constant(bank.astype(np.float32))
        self.noise = [tf.constant(b) for b in bank.astype(np.float32)]
        self.alphas = [tf.constant((k + 0.5) / IG_STEPS, tf.float32) for k in range(IG_STEPS)]
        spec_x = tf.TensorSpec((None, *shape), tf.float32)
        spec_t = tf.TensorSpec((None,), tf.int32)
        spec_img = tf.TensorSpec(shape, tf.float32)
        spec_a = tf.TensorSpec((), tf.float32)
        self.predict_fn = tf.function(self._predict, input_signature=[spec_x])
        self.smooth_fn = tf.function(self._smooth_batch, input_signature=[spec_x, spec_t, spec_img])
        self.ig_fn = tf.function(self._ig_batch, input_signature=[spec_x, spec_t, spec_a])
        self.smooth_fused_fn = tf.function(self._smooth_fused, input_signature=[spec_x])
        self.smooth_graph_fn = tf.function(self._smooth_in_graph, input_signature=[spec_x])
        self.ig_fused_fn = tf.function(self._ig_fused, input_signature=[spec_x])

    # traced bodies

    def _predict(self, x: tf.Tensor) -> tf.Tensor:
        logits = self._logits(self.features(x, training=False))
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def _grad(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = self._logits(self.features(x, training=False))
            score = tf.gather(logits, targets, axis=1, batch_dims=1)
        return tape.gradient(score, x)

    def _sigma(self, x: tf.Tensor) -> tf.Tensor:
        span = tf.reduce_max(x, axis=[1, 2, 3]) - tf.reduce_min(x, axis=[1, 2, 3])
        return SMOOTH_LEVEL * span

    def _smooth_batch(self, x: tf.Tensor, targets: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
        noisy = x + self._sigma(x)[:, None, None, None] * noise[None]
        return self._grad(noisy, targets)

    def _ig_batch(self, x: tf.Tensor, targets: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
        return x * self._grad(alpha * x, targets) / IG_STEPS

    def _smooth_fused(self, x: tf.Tensor) -> tf.Tensor:
        targets = self._predict(x)
        sigma = self._sigma(x)[None, :, None, None, None]
        noisy = tf.reshape(x[None] + sigma * self.bank[:, None], (-1, *self.shape))
        grads = self._grad(noisy, tf.tile(targets, [SMOOTH_SAMPLES]))
        grads = tf.reshape(grads, (SMOOTH_SAMPLES, -1, *self.shape))
        return tf.reduce_sum(grads, axis=0) / SMOOTH_SAMPLES

    def _smooth_in_graph(self, x: tf.Tensor) -> tf.Tensor:
        """One call that loops the noisy gradient batches in the graph (`tf.range`)."""
        targets = self._predict(x)
        total = tf.zeros_like(x)
        for k in tf.range(SMOOTH_SAMPLES):
            total += self._smooth_batch(x, targets, tf.gather(self.bank, k))
        return total / SMOOTH_SAMPLES

    def _ig_fused(self, x: tf.Tensor) -> tf.Tensor:
        targets = self._predict(x)
        alphas = (tf.range(IG_STEPS, dtype=tf.float32) + 0.5) / IG_STEPS
        path = tf.reshape(alphas[:, None, None, None, None] * x[None], (-1, *self.shape))
        grads = self._grad(path, tf.tile(targets, [IG_STEPS]))
        grads = tf.reshape(grads, (IG_STEPS, -1, *self.shape))
        return x * tf.reduce_sum(grads, axis=0) / IG_STEPS

    # host-side runs (what a user of bare TensorFlow would write)

    def vanilla(self, x: tf.Tensor) -> np.ndarray:
        return self.vanilla_fn(x).numpy()

    def smooth_loop(self, x: tf.Tensor) -> np.ndarray:
        targets = self.predict_fn(x)
        total = np.zeros(x.shape, np.float32)
        for noise in self.noise:
            total += self.smooth_fn(x, targets, noise).numpy()
        return total / SMOOTH_SAMPLES

    def ig_loop(self, x: tf.Tensor) -> np.ndarray:
        targets = self.predict_fn(x)
        total = np.zeros(x.shape, np.float32)
        for alpha in self.alphas:
            total += self.ig_fn(x, targets, alpha).numpy()
        return total

    def smooth_fused(self, x: tf.Tensor) -> np.ndarray:
        return self.smooth_fused_fn(x).numpy()

    def smooth_in_graph(self, x: tf.Tensor) -> np.ndarray:
        return self.smooth_graph_fn(x).numpy()

    def ig_fused(self, x: tf.Tensor) -> np.ndarray:
        return self.ig_fused_fn(x).numpy()

    def gradcam(self, x: tf.Tensor) -> np.ndarray:
        return self.gradcam_fn(x).numpy()

    def tracing_counts(self) -> list[int]:
        fns = [
            self.vanilla_fn,
            self.predict_fn,
            self.smooth_fn,
            self.ig_fn,
            self.smooth_fused_fn,
            self.smooth_graph_fn,
            self.ig_fused_fn,
            self.gradcam_fn,
        ]
        return [int(fn.experimental_get_tracing_count()) for fn in fns]


# -- measurement ------------------------------------------------------------------------------


METHOD_TITLES = {
    "vanilla": "vanilla",
    "smoothgrad": f"SmoothGrad-{SMOOTH_SAMPLES}",
    "integrated_gradients": f"IG-{IG_STEPS}",
    "gradcam": "Grad-CAM",
}


@dataclass
class Row:
    workload: str
    method: str
    batch_size: int
    engine_ms: list[float]
    reference_ms: list[float]
    engine_cpu_ms: list[float]
    reference_cpu_ms: list[float]
    engine_first_ms: float
    reference_first_ms: float
    traces_warm: int
    traces_after: int
    check: float
    target: float | None
    reference: str

    @property
    def engine(self) -> float:
        return statistics.median(self.engine_ms)

    @property
    def ref(self) -> float:
        return statistics.median(self.reference_ms)

    @property
    def ratio(self) -> float:
        return self.engine / self.ref

    @property
    def min_ratio(self) -> float:
        return min(self.engine_ms) / min(self.reference_ms)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.engine_cpu_ms) / statistics.median(self.reference_cpu_ms)

    @property
    def result(self) -> str:
        if self.target is None:
            return "info"
        return "PASS" if self.ratio <= self.target else "FAIL"


def compare(
    workload: str,
    method: str,
    explainer: Explainer,
    reference_fn: Callable[[], np.ndarray],
    probes: np.ndarray,
    repeats: int,
    target: float | None,
    reference: str,
) -> Row:
    """Warms both sides up, then times them interleaved."""
    engine_first, _, result = timed(lambda: explainer(probes))
    reference_first, _, expected = timed(reference_fn)
    check = relative_diff(result.attributions, expected)
    traces_warm = explainer.tracing_count
    sides: dict[str, Callable[[], Any]] = {
        "engine": lambda: explainer(probes),
        "reference": reference_fn,
    }
    wall: dict[str, list[float]] = {"engine": [], "reference": []}
    cpu: dict[str, list[float]] = {"engine": [], "reference": []}
    for i in range(repeats):
        for side in ("engine", "reference") if i % 2 == 0 else ("reference", "engine"):
            w, c, _ = timed(sides[side])
            wall[side].append(w)
            cpu[side].append(c)
    row = Row(
        workload,
        method,
        explainer.batch_size,
        wall["engine"],
        wall["reference"],
        cpu["engine"],
        cpu["reference"],
        engine_first,
        reference_first,
        traces_warm,
        explainer.tracing_count,
        check,
        target,
        reference,
    )
    print(
        f"  {method:<22} bs={row.batch_size:<5} engine {row.engine:9.1f} ms  "
        f"reference {row.ref:9.1f} ms  ratio {row.ratio:5.2f}  "
        f"(runs: {' '.join(f'{t:.0f}' for t in wall['engine'])} | "
        f"{' '.join(f'{t:.0f}' for t in wall['reference'])})",
        flush=True,
    )
    return row


def bench_workload(workload: Workload, quick: bool, profile: bool) -> list[Row]:
    print(f"\n== {workload.name}: building the model", flush=True)
    model = workload.build()
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    probes = np.random.default_rng(1).random((NUM_PROBES, *shape)).astype(np.float32)
    x = tf.constant(probes)
    ref = Reference(model, workload.gradcam_layer)
    fast, slow = (5, 1) if quick else (21, 7)
    n = NUM_PROBES
    smooth = SmoothGrad(Vanilla(), n_samples=SMOOTH_SAMPLES, noise_level=SMOOTH_LEVEL)
    ig = IntegratedGradients(steps=IG_STEPS)
    cases: list[tuple[str, Any, int, Callable[[], np.ndarray], int, float | None, str]] = [
        ("vanilla", "vanilla", n, lambda: ref.vanilla(x), fast, TARGET, f"1 call x {n}"),
        (
            "smoothgrad",
            smooth,
            n,
            lambda: ref.smooth_loop(x),
            slow,
            TARGET,
            f"1 fwd + {SMOOTH_SAMPLES} calls x {n}",
        ),
        (
            "smoothgrad",
            smooth,
            n,
            lambda: ref.smooth_in_graph(x),
            slow,
            TARGET,
            f"1 call looping {SMOOTH_SAMPLES} x {n} in the graph",
        ),
        (
            "integrated_gradients",
            ig,
            n,
            lambda: ref.ig_loop(x),
            slow,
            None,
            f"1 fwd + {IG_STEPS} calls x {n}",
        ),
        (
            "gradcam",
            GradCAM(workload.gradcam_layer),
            n,
            lambda: ref.gradcam(x),
            fast,
            None,
            f"1 call x {n}",
        ),
    ]
    if not quick:
        big_s, big_i = SMOOTH_SAMPLES * n, IG_STEPS * n
        cases += [
            (
                "smoothgrad",
                smooth,
                big_s,
                lambda: ref.smooth_fused(x),
                max(3, slow // 2),
                TARGET,
                f"1 call x {big_s} (fused)",
            ),
            (
                "integrated_gradients",
                ig,
                big_i,
                lambda: ref.ig_fused(x),
                max(3, slow // 2),
                None,
                f"1 call x {big_i} (fused)",
            ),
        ]
    rows = []
    for name, method, batch_size, reference_fn, repeats, target, label in cases:
        explainer = Explainer(model, method, target="predicted", batch_size=batch_size)
        rows.append(
            compare(workload.name, name, explainer, reference_fn, probes, repeats, target, label)
        )
        if profile:
            profile_call(explainer, probes)
    counts = [c for c in ref.tracing_counts() if c]
    retrace = "no retrace" if max(counts) == 1 else "RETRACED"
    print(f"  reference: {sum(counts)} traces over {len(counts)} tf.functions ({retrace})")
    return rows


def profile_call(explainer: Explainer, probes: np.ndarray) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    explainer(probes)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(10)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    print("    cProfile, one engine call, top 10 by own time:")
    for ln in lines[start:]:
        print("    " + ln[:150])


def print_tables(rows: list[Row]) -> None:
    print("\nTiming (median of interleaved runs; ratio = engine / reference)")
    header = (
        f"{'workload':<10} {'method':<21} {'engine bs':>9} {'engine ms':>10} "
        f"{'ref ms':>10} {'ratio':>6} {'target':>7} {'result':>6} {'min':>5} {'cpu':>5}  "
        f"{'check':>8}  reference"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        target = f"<={r.target:.2f}" if r.target is not None else "-"
        print(
            f"{r.workload:<10} {r.method:<21} {r.batch_size:>9} {r.engine:>10.1f} "
            f"{r.ref:>10.1f} {r.ratio:>6.2f} {target:>7} {r.result:>6} "
            f"{r.min_ratio:>5.2f} {r.cpu_ratio:>5.2f}  {r.check:>8.1e}  {r.reference}"
        )
    print("\nFirst call (tracing + first run) and retracing")
    header = (
        f"{'workload':<10} {'method':<21} {'engine bs':>9} {'engine 1st ms':>14} "
        f"{'ref 1st ms':>11} {'traces warm':>12} {'traces after':>13}  retrace"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        retrace = "no" if r.traces_after == r.traces_warm else "YES"
        print(
            f"{r.workload:<10} {r.method:<21} {r.batch_size:>9} {r.engine_first_ms:>14.0f} "
            f"{r.reference_first_ms:>11.0f} {r.traces_warm:>12} {r.traces_after:>13}  {retrace}"
        )
    print()
    for workload in dict.fromkeys(r.workload for r in rows):
        for method in ("smoothgrad", "integrated_gradients"):
            group = [r for r in rows if r.workload == workload and r.method == method]
            if len(group) < 2:
                continue
            best = min(group, key=lambda r: r.ref)
            default = next(r for r in group if r.batch_size == NUM_PROBES)
            print(
                f"{workload} {method}: fastest reference is '{best.reference}' "
                f"({best.ref:.1f} ms); engine at batch_size={default.batch_size} vs it: "
                f"{default.engine / best.ref:.2f}"
            )
    targeted = [r for r in rows if r.target is not None]
    failed = [r for r in targeted if r.result == "FAIL"]
    print(
        f"targets met: {len(targeted) - len(failed)}/{len(targeted)}"
        + (
            "  (failing: "
            + ", ".join(f"{r.workload}/{r.method}@{r.batch_size}" for r in failed)
            + ")"
            if failed
            else ""
        )
    )


def markdown(rows: list[Row]) -> str:
    """The timing table of the docs (docs/performance.md), from the rows of this run."""
    header = [
        f"workload ({NUM_PROBES} probes)",
        "method",
        "engine batch_size",
        "reference code",
        "engine",
        "reference",
        "ratio",
        "ratio of fastest runs",
        "CPU ratio",
        "target",
        "retrace",
    ]
    cells = [
        [
            WORKLOADS[r.workload].title,
            METHOD_TITLES[r.method],
            r.batch_size,
            r.reference,
            fmt_ms(r.engine),
            fmt_ms(r.ref),
            f"{r.ratio:.2f}",
            f"{r.min_ratio:.2f}",
            f"{r.cpu_ratio:.2f}",
            f"≤ {r.target:.2f}" if r.target is not None else "",
            "no" if r.traces_after == r.traces_warm else "YES",
        ]
        for r in rows
    ]
    return table(header, cells)


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no fused rows")
    parser.add_argument(
        "--workload",
        choices=["cnn", "mobilenet", "all"],
        default=None,
        help="default: all for timing, cnn for --memory",
    )
    parser.add_argument("--memory", action="store_true", help="peak RSS of a large SmoothGrad")
    parser.add_argument("--profile", action="store_true", help="cProfile one engine call each")
    parser.add_argument(
        "--markdown", help="write the timing table into section `bench_engine` of this page"
    )
    args = parser.parse_args(argv)
    if args.markdown and args.memory:
        parser.error("--markdown writes the timing table; --memory has none")
    load_start = load_average()
    print(environment())
    if args.memory:
        bench_memory(args.workload or "cnn")
        return 0
    print(
        f"{NUM_PROBES} probes; engine target='predicted', reduction='max_abs', normalize='minmax'"
    )
    names = list(WORKLOADS) if args.workload in (None, "all") else [args.workload]
    rows: list[Row] = []
    for name in names:
        rows += bench_workload(WORKLOADS[name], args.quick, args.profile)
    print_tables(rows)
    text = markdown(rows)
    print("\n" + text)
    if args.markdown:
        command = command_line("bench_engine.py", argv)
        write_section(args.markdown, "bench_engine", text, command, load_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
