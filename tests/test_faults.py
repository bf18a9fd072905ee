"""Faults never cost a run: each ends with training completed and readable event files."""

from __future__ import annotations

import shutil
import warnings

import keras
import numpy as np
import pytest
from conftest import images, tiny_cnn
from tb_events import read_run

import saliency_callback as sc

SHAPE = (12, 12, 3)


def compiled(lr=0.01, **kw):
    model = tiny_cnn(shape=SHAPE, **kw)
    model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy")
    return model


def data(n=16):
    rng = np.random.default_rng(1)
    return rng.random((n, *SHAPE)).astype(np.float32) * 100, rng.integers(0, 3, n)


def steps(log_dir, tag="saliency/confidence"):
    return sorted(s for s, _ in read_run(str(log_dir / "saliency")).scalars.get(tag, []))


class AtEpochEnd(keras.callbacks.Callback):
    def __init__(self, epoch, action):
        super().__init__()
        self.epoch, self.action = epoch, action

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.action()


@pytest.mark.tf_only  # on JAX this ReLU net dies with a finite loss instead of reaching NaN;
# non-finite outputs are covered on every backend by test_callback's nonfinite test.
def test_diverged_training_warns_skips_images_and_goes_on(tmp_path):
    model = compiled(lr=1e12, smooth=False)
    x, y = data()
    cb = sc.SaliencyCallback(images(4, SHAPE), log_dir=str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[cb])
    assert len(history.history["loss"]) == 3 and np.isnan(history.history["loss"][-1])
    messages = [str(w.message) for w in caught if "NaN/inf" in str(w.message)]
    assert messages and "at epoch 2" in messages[-1]
    run = read_run(str(tmp_path / "saliency"))
    assert run.scalars["saliency/nonfinite"][-1] == (2, 1.0)
    assert 2 not in [s for s, _ in run.images.get("saliency/probes", [])]


def test_log_dir_deleted_mid_run(tmp_path):
    log_dir = tmp_path / "logs"
    model = compiled()
    x, y = data()
    cb = sc.SaliencyCallback(images(4, SHAPE), log_dir=str(log_dir))
    remove = AtEpochEnd(0, lambda: shutil.rmtree(log_dir))
    with pytest.warns(UserWarning, match="disappeared"):
        history = model.fit(x, y, epochs=3, verbose=0, callbacks=[cb, remove])
    assert len(history.history["loss"]) == 3
    assert steps(log_dir) == [1, 2]


def test_log_dir_replaced_by_a_file_mid_run(tmp_path):
    log_dir = tmp_path / "logs"
    model = compiled()
    x, y = data()
    cb = sc.SaliencyCallback(images(4, SHAPE), log_dir=str(log_dir))

    def clobber():
        shutil.rmtree(log_dir)
        log_dir.write_text("not a directory")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=3, verbose=0, callbacks=[cb, AtEpochEnd(0, clobber)])
    assert len(history.history["loss"]) == 3
    assert any("saliency at epoch 1 failed" in str(w.message) for w in caught)
    log_dir.unlink()
    log_dir.mkdir()  # the place is writable again: the callback recovers on its next fit
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    assert steps(log_dir) == [0]


def test_keyboard_interrupt_after_a_logged_epoch_keeps_what_was_written(tmp_path):
    model = compiled()
    x, y = data()
    cb = sc.SaliencyCallback(images(4, SHAPE), log_dir=str(tmp_path))

    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, verbose=0, callbacks=[cb, AtEpochEnd(1, interrupt)])
    assert steps(tmp_path) == [0, 1]
    run = read_run(str(tmp_path / "saliency"))
    assert [s for s, _ in run.images["saliency/probes"]] == [0, 1]


def test_reuse_for_a_second_model_is_revalidated(tmp_path):
    probes = images(4, SHAPE)
    cb = sc.SaliencyCallback(probes, log_dir=str(tmp_path), strict=True)
    first, second = compiled(), tiny_cnn(shape=SHAPE, seed=5)
    second.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data()
    first.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    second.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    assert cb._explainer.model is second
    conf = read_run(str(tmp_path / "saliency")).scalars["saliency/confidence/probe_00"]
    expected = second.predict(probes[:1], verbose=0).max()
    assert any(abs(v - expected) < 1e-5 for _, v in conf)
    wrong = tiny_cnn(shape=(16, 16, 3))
    wrong.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"height 12 != 16"):
        wrong.fit(np.zeros((4, 16, 16, 3)), np.zeros(4), epochs=1, verbose=0, callbacks=[cb])
