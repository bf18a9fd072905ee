"""The fit and background modes of `bench_callback.py`.

`--fit`: the realistic overhead of the callback in a `fit`; `--background`: the background
tests' forward pass.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from _common import (
    NUM_PROBES,
    GradientReference,
    Workload,
    full_callback,
    small_cnn,
    timed,
)
from _hooks import instrumented
from _markdown import fmt_ms, table

from saliency_callback import SaliencyCallback, make_shortcut_data

FIT_TARGET_PCT = 2.0
FIT_IMAGES = 10_000


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
