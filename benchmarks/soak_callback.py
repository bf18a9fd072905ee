"""Soak test of `SaliencyCallback`: many logged epoch ends in one process.

What it measures
    A small CNN on 64x64x3 images (the one of `bench_engine.py`, 3 classes) with 32 probes
    (`make_shortcut_data`, with labels, masks and class names, so captions, mask metrics and
    every scalar are exercised), and the callback logging every epoch into a temporary log
    directory. The callback is driven through its Keras hooks (`set_model`, `set_params`,
    `on_train_begin`, then `on_epoch_end(e, logs)` for e = 0..N-1, `on_train_end`); between two
    epoch ends one tiny training step (`train_on_batch` on 32 images) changes the weights, so
    each epoch's maps and images differ as in a real run (`--no-train` turns it off). Only the
    `on_epoch_end` call is timed.

    Reported, with a PASS/FAIL per target:
    - tracing count of the callback's compiled functions after the first logged epoch and after
      the last one: it must not grow (no retrace);
    - resident set size (VmRSS from /proc/self/status, after `gc.collect()`) after epoch 10 and
      after the last epoch: growth < 50 MB;
    - per-epoch time trend: median `on_epoch_end` time of each block of 20 epochs; the last
      block's median must stay within 1.25x of the first block's after warm-up (epochs 1-20;
      not a target from the issue, a sanity check: flat means no accumulation);
    - event file size at the end and bytes per logged epoch (information).

How to run
    python benchmarks/soak_callback.py                # 200 logged epochs (about 1 to 2 minutes)
    python benchmarks/soak_callback.py --epochs 50    # shorter
    python benchmarks/soak_callback.py --no-train     # fixed weights, no training steps
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from _common import NUM_PROBES, dir_bytes, environment, full_callback, small_cnn

from saliency_callback import make_shortcut_data

RSS_EPOCH = 10
RSS_GROWTH_LIMIT_MB = 50.0
TREND_LIMIT = 1.25
BLOCK = 20


def rss_mb() -> float:
    """Current resident set size in MB (VmRSS), after a garbage collection."""
    gc.collect()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError("no VmRSS in /proc/self/status")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def soak(epochs: int, train: bool) -> bool:
    probes = make_shortcut_data(NUM_PROBES, image_size=64, seed=1)
    batches = make_shortcut_data(32 * 8, image_size=64, seed=2)
    model = small_cnn((64, 64, 3), num_classes=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    tmp = tempfile.mkdtemp(prefix="soak_callback_")
    try:
        cb = full_callback(probes, tmp)
        cb.set_model(model)
        cb.set_params({"epochs": epochs, "verbose": 0, "steps": 1})
        cb.on_train_begin()
        assert cb._explainer is not None
        times: list[float] = []
        rss: dict[int, float] = {}
        traces_first = -1
        print(
            f"{'epochs':>9} {'median ms':>10} {'min ms':>7} {'max ms':>7} {'RSS MB':>8} "
            f"{'event MB':>9} {'traces':>6}"
        )
        for epoch in range(epochs):
            if train:
                i = epoch % 8
                sl = slice(32 * i, 32 * (i + 1))
                model.train_on_batch(batches.images[sl], batches.labels[sl])
            logs: dict[str, Any] = {}
            start = time.perf_counter()
            cb.on_epoch_end(epoch, logs)
            times.append((time.perf_counter() - start) * 1e3)
            done = epoch + 1
            if done == 1:
                traces_first = cb._explainer.tracing_count
            if done in (RSS_EPOCH, epochs):
                rss[done] = rss_mb()
            if done % BLOCK == 0 or done == epochs:
                block = times[max(0, done - BLOCK) : done]
                print(
                    f"{done - len(block) + 1:>4}-{done:<4} "
                    f"{statistics.median(block):>10.1f} {min(block):>7.1f} {max(block):>7.1f} "
                    f"{rss_mb():>8.1f} {dir_bytes(cb.writer.path) / 1e6:>9.2f} "
                    f"{cb._explainer.tracing_count:>6}",
                    flush=True,
                )
        traces_last = cb._explainer.tracing_count
        event_bytes = dir_bytes(cb.writer.path)
        cb.on_train_end()
        event_bytes = max(event_bytes, dir_bytes(cb.writer.path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    first = times[1 : 1 + BLOCK]  # epoch 0 traces
    last = times[-BLOCK:]
    trend = statistics.median(last) / statistics.median(first)
    growth = rss[epochs] - rss[min(RSS_EPOCH, epochs)]
    checks = {
        "tracing": traces_last == traces_first,
        "rss": growth < RSS_GROWTH_LIMIT_MB,
        "trend": trend <= TREND_LIMIT,
    }
    print(
        f"\nfirst logged epoch (traces): {times[0]:.0f} ms; median of all later epochs: "
        f"{statistics.median(times[1:]):.1f} ms"
    )
    print(
        f"tracing count after the first logged epoch: {traces_first}, after the last "
        f"({epochs}): {traces_last}  -> {verdict(checks['tracing'])} (must not grow)"
    )
    print(
        f"RSS after epoch {min(RSS_EPOCH, epochs)}: {rss[min(RSS_EPOCH, epochs)]:.1f} MB, after "
        f"epoch {epochs}: {rss[epochs]:.1f} MB, growth {growth:+.1f} MB  -> "
        f"{verdict(checks['rss'])} (target < {RSS_GROWTH_LIMIT_MB:.0f} MB)"
    )
    print(
        f"epoch time: median {statistics.median(first):.1f} ms over epochs 1-{BLOCK}, "
        f"{statistics.median(last):.1f} ms over the last {BLOCK}: x{trend:.2f}  -> "
        f"{verdict(checks['trend'])} (sanity check: <= x{TREND_LIMIT})"
    )
    print(
        f"event file: {event_bytes / 1e6:.1f} MB for {epochs} logged epochs, "
        f"{event_bytes / epochs / 1e6:.2f} MB per epoch (information; TensorBoard loads it all)"
    )
    ok = all(checks.values())
    print(f"soak: {'PASS' if ok else 'FAIL'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--epochs", type=int, default=200, help="logged epochs (>= 21)")
    parser.add_argument("--no-train", action="store_true", help="no training step between")
    args = parser.parse_args(argv)
    if args.epochs <= BLOCK:
        parser.error(f"--epochs must be > {BLOCK}")
    print(
        f"{environment()}; small CNN, "
        f"{NUM_PROBES} probes 64x64x3 with labels and masks, {args.epochs} logged epochs, "
        f"{'no training' if args.no_train else 'one train_on_batch step'} between epoch ends"
    )
    ok = soak(args.epochs, not args.no_train)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
