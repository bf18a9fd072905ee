"""Long-run measurements for `bench_callback.py` (issue #12): blocking time of the epoch end
with the background worker, `fit` with the worker vs inline, and growing the probe set.

Imported by `bench_callback.py` (flags `--blocking`, `--fit-modes`, `--growth`); see there.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from _common import (
    NUM_CLASSES,
    NUM_PROBES,
    WORKLOADS,
    GradientReference,
    Workload,
    dir_bytes,
    make_probes,
    small_cnn,
    timed,
)
from _markdown import fmt_ms, table

from saliency_callback import Display, Runtime, SaliencyCallback, make_shortcut_data
from saliency_callback.output.timeline import overlay_tiles

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_callback.py")
MODES = {
    "worker": {"background_writer": True},
    "inline": {"background_writer": False},
    "inline, no timeline (as before #12)": {"background_writer": False, "timeline": False},
}


def _callback(
    images: np.ndarray,
    labels: np.ndarray | None,
    log_dir: str,
    background_writer: bool = True,
    timeline: bool = True,
) -> Any:
    """Vanilla gradients (the issue's measurements), whatever the callback's default method."""
    return SaliencyCallback(
        images,
        labels=labels,
        log_dir=log_dir,
        method="vanilla",
        display=Display(timeline=timeline),
        runtime=Runtime(strict=True, background_writer=background_writer),
    )


def bench_blocking(workload: Workload, repeats: int, kind: str = "random") -> dict[str, float]:
    """Median blocking time of `on_epoch_end` per mode, over the bare compiled gradient.

    Interleaved: per repeat, the bare gradient and each mode's `on_epoch_end` (the worker's
    pending step is waited for, untimed, before anything else is timed, so nothing overlaps;
    in a real `fit` it overlaps the next epoch's training). Also the worker's whole step
    (`on_epoch_end` + waiting for the write) for information.
    """
    images, labels = make_probes(workload.size, kind)
    model = workload.build()
    ref = GradientReference(model, workload.gradcam_layer)
    x = tf.constant(images)
    tmp = tempfile.mkdtemp(prefix="bench_blocking_")
    try:
        cbs = {}
        for name, kw in MODES.items():
            cb = _callback(images, labels, os.path.join(tmp, name.split(",")[0]), **kw)
            cb.set_model(model)
            cb.on_train_begin()
            for e in range(2):  # warm-up: tracing, files
                cb.on_epoch_end(e, {})
                cb.flush()
            cbs[name] = cb
        ref.vanilla_fn(x).numpy()
        times: dict[str, list[float]] = {name: [] for name in [*MODES, "bare gradient"]}
        whole: list[float] = []
        for i in range(repeats):
            times["bare gradient"].append(timed(lambda: ref.vanilla_fn(x).numpy())[0])
            order = list(MODES) if i % 2 == 0 else list(MODES)[::-1]
            for name in order:
                cb = cbs[name]
                step = 10 + i
                start = time.perf_counter()
                times[name].append(timed(lambda cb=cb, step=step: cb.on_epoch_end(step, {}))[0])
                cb.flush()
                if name == "worker":
                    whole.append((time.perf_counter() - start) * 1e3)
        for cb in cbs.values():
            cb.on_train_end()
        med = {name: statistics.median(v) for name, v in times.items()}
        med["worker step (blocking + background)"] = statistics.median(whole)
        med["  of which the timeline (thumbnails, image, PNG)"] = timeline_ms(
            cbs["inline"], repeats
        )
        grad = med["bare gradient"]
        print(
            f"\n{workload.name}, {len(images)} probes {workload.size}x{workload.size} "
            f"({kind}), load average {os.getloadavg()[0]:.1f}:"
        )
        print(f"| mode | on_epoch_end blocks | / bare gradient ({grad:.1f} ms) |\n|---|---|---|")
        for name, ms in med.items():
            if name != "bare gradient":
                print(f"| {name} | {ms:.1f} ms | {ms / grad:.2f} |")
        return med
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def blocking_table(medians: dict[str, dict[str, float]]) -> str:
    """One row per workload (`bench_blocking`'s medians): each mode against the bare gradient."""
    modes = [*MODES, "worker step (blocking + background)"]
    rows = []
    for name, med in medians.items():
        grad = med["bare gradient"]
        rows.append(
            [
                WORKLOADS[name].title,
                fmt_ms(grad),
                *(f"{fmt_ms(med[m])} ({med[m] / grad:.2f}x)" for m in modes),
                fmt_ms(med["  of which the timeline (thumbnails, image, PNG)"]),
            ]
        )
    header = [
        f"workload ({NUM_PROBES} probes)",
        "bare gradient",
        "worker (default)",
        "inline",
        "inline, no timeline (before #12)",
        "worker's whole step",
        "timeline's own work",
    ]
    return table(header, rows)


# -- fit: worker vs inline ---------------------------------------------------------------------


def bench_fit_modes(images_per_epoch: int, epochs: int, rounds: int) -> str:
    """`fit` epoch time with the worker, inline, and without the callback (ABC CBA rounds).

    Each mode is its own `fit` of `epochs` epochs on the same model (training continues), the
    callback logging every epoch; the fit's wall time (including joining the worker at
    `on_train_end`) divided by `epochs`. The callbacks persist across fits (traced once).
    """
    print(
        f"\n== fit modes: {images_per_epoch} images 64x64x3 per epoch, small CNN (3 classes), "
        f"batch 32, 32 probes with labels and masks, logging every epoch; {rounds} rounds of "
        f"{epochs}-epoch fits per mode",
        flush=True,
    )
    train = make_shortcut_data(images_per_epoch, image_size=64, seed=0)
    probes = make_shortcut_data(32, image_size=64, seed=1)
    model = small_cnn((64, 64, 3), num_classes=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    tmp = tempfile.mkdtemp(prefix="bench_fit_modes_")
    modes: dict[str, Any] = {
        name: SaliencyCallback(
            probes.images,
            labels=probes.labels,
            masks=probes.masks,
            log_dir=os.path.join(tmp, name),
            method="vanilla",
            runtime=Runtime(strict=True, background_writer=name == "worker"),
        )
        for name in ("worker", "inline")
    }
    modes["off"] = None
    results: dict[str, list[float]] = {name: [] for name in modes}
    cpu: dict[str, list[float]] = {name: [] for name in modes}
    try:
        for cb in modes.values():  # warm-up fit of each
            model.fit(train.images, train.labels, epochs=1, verbose=0, callbacks=[cb] if cb else [])
        for r in range(rounds):
            order = list(modes) if r % 2 == 0 else list(modes)[::-1]
            for name in order:
                cb = modes[name]
                ms, cpu_ms, _ = timed(
                    lambda cb=cb: model.fit(
                        train.images,
                        train.labels,
                        epochs=epochs,
                        verbose=0,
                        callbacks=[cb] if cb else [],
                    )
                )
                results[name].append(ms / epochs)
                cpu[name].append(cpu_ms / epochs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    off = statistics.median(results["off"])
    print(f"load average {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")
    rows = []
    for name in modes:
        med = statistics.median(results[name])
        rows.append(
            [
                name,
                f"{med / 1e3:.2f} s",
                f"{(med - off) / off * 100:+.1f}%",
                f"{statistics.median(cpu[name]) / 1e3:.2f} s",
                " ".join(f"{t / 1e3:.2f}" for t in results[name]),
            ]
        )
    header = [
        f"mode ({images_per_epoch} images per epoch)",
        "epoch wall time (median)",
        "vs off",
        "CPU per epoch",
        "runs (s)",
    ]
    return table(header, rows)


# -- growing the probe set ---------------------------------------------------------------------


def timeline_ms(cb: Any, repeats: int) -> float:
    """Median time of the timeline's own work for one step: thumbnails, image, PNG encoding."""
    sw = cb._step_writer
    assert sw is not None and sw.timeline is not None
    result = cb._explainer.explain_prepared(*cb._prepared)
    panels = cb.renderer.panels(cb.probes.raw, result.maps, cb._captions(result))
    tiles = overlay_tiles(panels)

    def timeline() -> None:
        sw.timeline.add(99, tiles)
        sw.writer.encode(sw.timeline.image())

    return statistics.median(timed(timeline)[0] for _ in range(repeats))


def growth_one(n: int, repeats: int) -> dict[str, float]:
    """One probe count, in its own process (peak RSS): the small CNN on 128x128 noise probes."""
    rng = np.random.default_rng(1)
    images = rng.random((n, 128, 128, 3)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, n)
    model = small_cnn((128, 128, 3))
    ref = GradientReference(model, "last_conv")
    x = tf.constant(images)
    tmp = tempfile.mkdtemp(prefix="bench_growth_")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        out: dict[str, float] = {"n": n}
        for name, kw in (("worker", {}), ("inline", {"background_writer": False})):
            cb = _callback(images, labels, os.path.join(tmp, name), **kw)
            cb.set_model(model)
            cb.on_train_begin()
            cb.on_epoch_end(0, {})
            cb.flush()
            ref.vanilla_fn(x).numpy()
            size0 = dir_bytes(cb.writer.path)
            blocking, grad = [], []
            for i in range(repeats):
                grad.append(timed(lambda: ref.vanilla_fn(x).numpy())[0])
                blocking.append(timed(lambda cb=cb, i=i: cb.on_epoch_end(1 + i, {}))[0])
                cb.flush()
            out[f"{name} ms"] = statistics.median(blocking)
            out["gradient ms"] = statistics.median(grad)
            out["bytes per step"] = (dir_bytes(cb.writer.path) - size0) / repeats
            if name == "inline":  # the timeline's share of the step, measured on its own
                out["timeline ms"] = timeline_ms(cb, repeats)
            cb.on_train_end()
        out["peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["RSS added MB"] = (peak - rss_before) / 1024
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def growth_subprocess(n: int, repeats: int) -> dict[str, float]:
    """`growth_one` in a process of its own (`bench_callback.py --growth-one`): its peak RSS."""
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--growth-one", str(n), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def bench_growth(counts: list[int], repeats: int) -> str:
    print(
        "\n== growing the probe set: small CNN, 128x128x3 uniform-noise probes (the worst case "
        "for PNG), callback defaults, each count in its own process",
        flush=True,
    )
    rows = [growth_subprocess(n, repeats) for n in counts]
    header = [
        "probes",
        "bare gradient",
        "epoch end blocks (worker)",
        "ratio",
        "whole step inline",
        "per probe",
        "timeline (share of inline step)",
        "event file per logged step",
        "peak RSS",
    ]
    cells = [
        [
            int(r["n"]),
            fmt_ms(r["gradient ms"]),
            fmt_ms(r["worker ms"]),
            f"{r['worker ms'] / r['gradient ms']:.2f}",
            fmt_ms(r["inline ms"]),
            fmt_ms(r["inline ms"] / r["n"]),
            f"{fmt_ms(r['timeline ms'])} ({r['timeline ms'] / r['inline ms']:.0%})",
            f"{r['bytes per step'] / 1e6:.1f} MB",
            f"{r['peak RSS MB']:.0f} MB",
        ]
        for r in rows
    ]
    return table(header, cells)


def growth_main(n: int, repeats: int) -> None:
    keras.utils.set_random_seed(0)
    print(json.dumps(growth_one(n, repeats)))
