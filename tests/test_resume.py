"""Preemption with `keras.callbacks.BackupAndRestore`: no duplicates, no gaps, alarm continues."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from conftest import images, tiny_cnn
from tb_events import read_run

import saliency_callback as sc

SHAPE = (12, 12, 3)
EPOCHS = 6


class PreemptedError(Exception):
    pass


class PreemptAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise PreemptedError


def masks(n):
    m = np.zeros((n, *SHAPE[:2]), bool)
    m[:, 3:9, 2:7] = True
    return m


def callback(log_dir, background_writer=True):
    # threshold 1: every epoch is below it, so with patience 3 the alarm fires at the third
    # logged epoch after training starts (epoch 2), whether or not training was interrupted.
    return sc.SaliencyCallback(
        images(4, SHAPE),
        masks=masks(4),
        log_dir=str(log_dir),
        runtime=sc.Runtime(
            log_before_training=True, strict=True, background_writer=background_writer
        ),
        alarm=sc.ShortcutAlarm(1.0, monitor="mass_in_mask", patience=3),
    )


def cut_short(log_dir):
    """A callback whose process dies at step 2 after the images, before the scalars."""
    cb = callback(log_dir, background_writer=False)
    original = cb.writer.scalars

    def scalars(values, step):
        if step == 2:
            raise PreemptedError
        original(values, step)

    cb.writer.scalars = scalars
    return cb


def run(tmp_path, order, preempt_at):
    """Trains EPOCHS epochs, preempted once at the end of `preempt_at`, then resumed by a new
    callback (as in a new process) with the same log directory and backup."""
    keras.utils.set_random_seed(0)
    model = tiny_cnn(shape=SHAPE)
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x, y = rng.random((16, *SHAPE)).astype(np.float32), rng.integers(0, 3, 16)
    backup = str(tmp_path / "backup")
    log_dir = tmp_path / "logs"

    def callbacks(interrupt):
        parts = {
            "backup": keras.callbacks.BackupAndRestore(backup),
            "saliency": callback(log_dir),
            "preempt": PreemptAt(preempt_at if interrupt else -1),
        }
        if interrupt and "preempt" not in order:
            parts["saliency"] = cut_short(log_dir)
        return [parts[name] for name in order]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the alarm's warning
        with pytest.raises(PreemptedError):
            model.fit(x, y, epochs=EPOCHS, batch_size=4, verbose=0, callbacks=callbacks(True))
        history = model.fit(
            x, y, epochs=EPOCHS, batch_size=4, verbose=0, callbacks=callbacks(False)
        )
    return read_run(str(log_dir / "saliency"), served=True), history


@pytest.mark.parametrize(
    "order",
    [
        # The backup of epoch 2 is saved, then the run dies before the saliency of epoch 2 is
        # written (or while the worker writes it): a gap at step 2, unless it is filled.
        ("backup", "preempt", "saliency"),
        # The saliency of epoch 2 is written, then the run dies before the backup of epoch 2:
        # epoch 2 is trained again, and step 2 would be written twice.
        ("saliency", "preempt", "backup"),
        # The backup of epoch 2 is saved, then the run dies while step 2 is being written:
        # its images are in the event file, its scalars are not.
        ("backup", "saliency"),
    ],
    ids=["gap", "duplicate", "cut-short"],
)
def test_resume_has_each_step_once_and_the_alarm_keeps_its_streak(tmp_path, order):
    run_, history = run(tmp_path, order, preempt_at=2)
    expected = list(range(-1, EPOCHS))
    for tag in ("saliency/overview", "saliency/probes", "saliency/timeline"):
        assert [s for s, _ in run_.images[tag]] == expected, tag
    for tag in ("saliency/mass_in_mask", "saliency/confidence/probe_00"):
        assert [s for s, _ in run_.scalars[tag]] == expected, tag
    # Patience 3 over the logged epochs 0, 1, 2 (step -1 does not count): one message, at 2.
    assert [s for s, _ in run_.texts["saliency/alarm_message"]] == [2]
    assert [s for s, v in run_.scalars["saliency/alarm"] if v == 1.0] == [2]
    resumed_at = 3 if order[0] == "backup" else 2  # the backup of epoch 2 was saved, or not
    assert len(history.history["loss"]) == EPOCHS - resumed_at
