"""Does TensorFlow wait at the start of an epoch? A plain Keras `fit`, no saliency callback.

    python benchmarks/bench_epoch_start.py --epochs 10                 # arrays to `fit`
    python benchmarks/bench_epoch_start.py --epochs 10 --no-autotune   # a dataset, autotuning off
    python benchmarks/bench_epoch_start.py --quick                     # a smoke test (seconds)

The small CNN of `_common` trains on 8,000 synthetic images of 64x64 (batch 32), and a clock
callback records, per epoch, the wall time from `on_epoch_begin` to the first training batch
and the process CPU time over that wait. With arrays passed to `fit`, Keras makes a new
`tf.data` iterator every epoch, and TensorFlow's teardown of the previous one sometimes waits
0.7-5 s with the process idle; with `--no-autotune` the same data comes as a `tf.data.Dataset`
with `options.autotune.enabled = False` (`bench_fit.fit_inputs`), which does not wait. No
library code runs during training: this shows what TensorFlow does on this machine, whatever
the callback does (docs/performance-fit.md, "What the slow epochs are").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
from _common import environment, small_cnn
from bench_fit import fit_inputs

from saliency_callback import make_shortcut_data

WAITED_S = 0.5
"""A first batch later than this after the epoch began counts as a wait (as in `bench_fit`)."""


class FirstBatchClock(keras.callbacks.Callback):
    """Per epoch: (epoch wall s, wall s until the first batch, process CPU s over that wait)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[float, float, float]] = []
        self._begin = (0.0, 0.0)
        self._wait = (0.0, 0.0)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._begin = (time.perf_counter(), time.process_time())
        self._wait = (-1.0, -1.0)

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self._wait[0] < 0:
            wall, cpu = self._begin
            self._wait = (time.perf_counter() - wall, time.process_time() - cpu)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.rows.append((time.perf_counter() - self._begin[0], *self._wait))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument(
        "--no-autotune", action="store_true", help="a tf.data.Dataset with autotuning off"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke test")
    args = parser.parse_args(argv)
    size = 32 if args.quick else 64
    if args.quick:
        args.epochs, args.images = 2, 256
    if args.epochs < 1 or args.images < 32:
        parser.error(f"expected --epochs >= 1 and --images >= 32, received {args}")
    tf_data = "no-autotune" if args.no_autotune else "keras"
    print(f"# bench_epoch_start: {' '.join(argv or sys.argv[1:]) or '(defaults)'}\n")
    print(f"{environment()}\n")
    train = make_shortcut_data(args.images, image_size=size, num_classes=3, seed=0)
    model = small_cnn((size, size, 3), 3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    clock = FirstBatchClock()
    model.fit(**fit_inputs(train, tf_data), epochs=args.epochs, verbose=0, callbacks=[clock])
    print("| epoch | epoch wall (s) | wait for the first batch (s) | process CPU in the wait (s) |")
    print("|---|---|---|---|")
    for epoch, (wall, wait, cpu) in enumerate(clock.rows):
        print(f"| {epoch} | {wall:.2f} | {wait:.2f} | {cpu:.2f} |")
    waited = [w for _, w, _ in clock.rows if w > WAITED_S]
    print(
        f"\n{len(waited)} of {len(clock.rows)} epochs waited more than {WAITED_S} s for their "
        f"first batch ({tf_data}); load average at the end {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
