"""An epoch whose first batch waits with the process idle is worded once per fit, and named
as not the callback's; a busy or short wait is not."""

from __future__ import annotations

import time
import warnings

import keras
import numpy as np

import saliency_callback as sc
from saliency_callback.training.epoch_start import EpochStartWatch


class FakeClocks:
    """A wall clock and a process-CPU clock that move only when the test says: the watch's
    decisions, independent of the machine's speed and load."""

    def __init__(self) -> None:
        self.wall = self.cpu = 100.0

    def wait(self, seconds: float, busy: float = 0.0) -> None:
        """`seconds` pass, `busy` of them spent on the process's CPU."""
        self.wall += seconds
        self.cpu += busy

    def watch(self, threshold_s: float) -> EpochStartWatch:
        return EpochStartWatch(threshold_s, clock=lambda: self.wall, cpu_clock=lambda: self.cpu)


def test_the_watch_reads_the_real_clocks_by_default():
    watch = EpochStartWatch()
    assert watch.clock is time.perf_counter and watch.cpu_clock is time.process_time


def test_an_idle_wait_is_worded_once_per_fit():
    clocks = FakeClocks()
    watch = clocks.watch(threshold_s=0.2)
    watch.epoch_begin(2)
    assert watch.pending
    clocks.wait(0.3, busy=0.02)
    message = watch.first_batch()
    assert message is not None and not watch.pending
    assert "first batch of epoch 3 started 0.3 s after" in message
    assert "with the process idle (0.02 s of CPU)" in message
    assert "this callback does no work there" in message
    assert "autotune.enabled = False" in message
    clocks.wait(5.0)
    assert watch.first_batch() is None  # the epoch's later batches
    watch.epoch_begin(3)
    clocks.wait(0.3)
    assert watch.first_batch() is None  # once per fit
    watch.reset()
    watch.epoch_begin(0)
    clocks.wait(0.7)
    message = watch.first_batch()  # a new fit says it again
    assert message is not None and "epoch 1 started 0.7 s after" in message


def test_a_busy_or_short_wait_is_not_worded():
    clocks = FakeClocks()
    watch = clocks.watch(threshold_s=0.2)
    watch.epoch_begin(0)
    clocks.wait(0.4, busy=0.11)  # over a quarter of it on the CPU (a data pipeline): busy
    assert watch.first_batch() is None
    watch.epoch_begin(1)
    clocks.wait(0.19)  # idle, but shorter than the threshold
    assert watch.first_batch() is None
    assert not watch.told
    assert watch.first_batch() is None  # no epoch began: nothing to say
    watch.epoch_begin(2)
    clocks.wait(0.4, busy=0.09)  # under a quarter on the CPU: idle, worded
    assert watch.first_batch() is not None and watch.told


class _IdleAfter(keras.callbacks.Callback):
    """At the start of epochs 1 and 2, after the saliency callback's own hook, 0.8 s pass on
    the fake wall clock with no CPU spent."""

    def __init__(self, clocks: FakeClocks) -> None:
        super().__init__()
        self.clocks = clocks

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= 1:
            self.clocks.wait(0.8)


def test_the_callback_words_an_idle_wait_in_a_real_fit(tmp_path):
    data = sc.make_shortcut_data(48, image_size=16, num_classes=3, seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    cb = sc.SaliencyCallback(
        data.images[:6],
        labels=data.labels[:6],
        masks=data.masks[:6],
        log_dir=str(tmp_path),
        method="vanilla",
        background_tests=False,
    )
    # The watch's clocks are the test's: only the other callback's "sleep" moves them, so what
    # is checked is where the callback starts and stops the watch, not the machine's timing
    # (the worker renders the previous epoch meanwhile, and the real process is never idle).
    clocks = FakeClocks()
    cb._epoch_start.threshold_s = 0.3
    cb._epoch_start.clock = lambda: clocks.wall
    cb._epoch_start.cpu_clock = lambda: clocks.cpu
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            data.images,
            data.labels,
            epochs=3,
            batch_size=16,
            verbose=0,
            callbacks=[cb, _IdleAfter(clocks)],
        )
    said = [str(w.message) for w in caught if "first batch of epoch" in str(w.message)]
    # Epochs 2 and 3 waited (the other callback slept); epoch 1 did not: one message, epoch 2.
    assert len(said) == 1, said
    assert said[0].startswith("SaliencyCallback: the first batch of epoch 2 started 0.8 s after")
    assert np.isfinite(model.evaluate(data.images, data.labels, verbose=0))
