"""An epoch whose first batch waits with the process idle is worded once per fit, and named
as not the callback's; a busy or short wait is not."""

from __future__ import annotations

import gc
import time
import warnings

import keras
import numpy as np

import saliency_callback as sc
from saliency_callback.training.epoch_start import EpochStartWatch


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_an_idle_wait_is_worded_once_per_fit():
    watch = EpochStartWatch(threshold_s=0.2)
    watch.epoch_begin(2)
    assert watch.pending
    time.sleep(0.3)
    message = watch.first_batch()
    assert message is not None and not watch.pending
    assert "first batch of epoch 3 started 0.3 s after" in message
    assert "this callback does no work there" in message
    assert "autotune.enabled = False" in message
    assert watch.first_batch() is None  # the epoch's later batches
    watch.epoch_begin(3)
    time.sleep(0.3)
    assert watch.first_batch() is None  # once per fit
    watch.reset()
    watch.epoch_begin(0)
    time.sleep(0.3)
    assert watch.first_batch() is not None  # a new fit says it again


def test_a_busy_or_short_wait_is_not_worded():
    watch = EpochStartWatch(threshold_s=0.2)
    watch.epoch_begin(0)
    _busy(0.3)  # somebody worked (a data pipeline making the batch): not an idle wait
    assert watch.first_batch() is None
    watch.epoch_begin(1)
    time.sleep(0.05)  # idle, but short
    assert watch.first_batch() is None
    assert not watch.told
    assert watch.first_batch() is None  # no epoch began: nothing to say


class _IdleAfter(keras.callbacks.Callback):
    """Sleeps (idle) at the start of epoch 1, after the saliency callback's own hook."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= 1:
            time.sleep(0.8)


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
    cb._epoch_start.threshold_s = 0.3
    # Earlier tests' tf.data iterators left in reference cycles are torn down now, not inside
    # this fit's first epoch (where their teardown could wait with the process idle too).
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            data.images,
            data.labels,
            epochs=3,
            batch_size=16,
            verbose=0,
            callbacks=[cb, _IdleAfter()],
        )
    said = [str(w.message) for w in caught if "first batch of epoch" in str(w.message)]
    # Epochs 2 and 3 waited (the other callback slept); epoch 1 did not: one message, epoch 2.
    assert len(said) == 1, said
    assert said[0].startswith("SaliencyCallback: the first batch of epoch 2 started")
    assert np.isfinite(model.evaluate(data.images, data.labels, verbose=0))
