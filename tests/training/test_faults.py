"""Faults never cost a run: each ends with training completed and readable event files."""

from __future__ import annotations

import os
import shutil
import signal
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


BACKGROUND = pytest.mark.parametrize("background", [True, False], ids=["worker", "inline"])


@BACKGROUND
def test_log_dir_deleted_mid_run(tmp_path, background):
    log_dir = tmp_path / "logs"
    model = compiled()
    x, y = data()
    cb = sc.SaliencyCallback(
        images(4, SHAPE),
        log_dir=str(log_dir),
        runtime=sc.Runtime(background_writer=background),
    )

    def delete():
        cb.flush()  # after step 0 is on disk (the worker may still be writing it)
        shutil.rmtree(log_dir)

    remove = AtEpochEnd(0, delete)
    with pytest.warns(UserWarning, match="disappeared"):
        history = model.fit(x, y, epochs=3, verbose=0, callbacks=[cb, remove])
    assert len(history.history["loss"]) == 3
    assert steps(log_dir) == [1, 2]


@BACKGROUND
def test_log_dir_replaced_by_a_file_mid_run(tmp_path, background):
    log_dir = tmp_path / "logs"
    model = compiled()
    x, y = data()
    cb = sc.SaliencyCallback(
        images(4, SHAPE),
        log_dir=str(log_dir),
        runtime=sc.Runtime(background_writer=background),
    )

    def clobber():
        cb.flush()
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


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt during the test, whatever this process inherited (a job
    started with `&` in a non-interactive shell inherits SIGINT ignored); restored after."""
    was = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, was)


@BACKGROUND
def test_keyboard_interrupt_after_a_logged_epoch_keeps_what_was_written(
    tmp_path, background, ctrl_c_raises
):
    model = compiled()
    x, y = data()
    cb = sc.SaliencyCallback(
        images(4, SHAPE),
        log_dir=str(tmp_path),
        runtime=sc.Runtime(background_writer=background),
    )
    handler = signal.getsignal(signal.SIGINT)

    def interrupt():
        # A real Ctrl-C (SIGINT) while the worker may still be writing step 1.
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, verbose=0, callbacks=[cb, AtEpochEnd(1, interrupt)])
    assert steps(tmp_path) == [0, 1]
    run = read_run(str(tmp_path / "saliency"))
    assert [s for s, _ in run.images["saliency/probes"]] == [0, 1]
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])  # reused: its handler is restored
    assert signal.getsignal(signal.SIGINT) is handler


def test_reuse_for_a_second_model_is_revalidated(tmp_path):
    probes = images(4, SHAPE)
    cb = sc.SaliencyCallback(
        probes,
        log_dir=str(tmp_path),
        runtime=sc.Runtime(strict=True),
    )
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


FULL_DISK = """
import resource, signal, sys, warnings
import keras, numpy as np
from conftest import tiny_cnn
import saliency_callback as sc
model = tiny_cnn(shape=(12, 12, 3))
model.compile("sgd", "sparse_categorical_crossentropy")
rng = np.random.default_rng(1)
x, y = rng.random((16, 12, 12, 3)).astype(np.float32), rng.integers(0, 3, 16)
cb = sc.SaliencyCallback(rng.random((8, 12, 12, 3)).astype(np.float32), log_dir=sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then a write past the limit fails (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))  # the "disk" holds 150 kB
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[cb])
print("EPOCHS", len(history.history["loss"]))
print("WARNINGS", sum("failed and was skipped" in str(w.message) for w in caught))
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_full_disk_warns_training_goes_on_and_earlier_steps_stay(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).parents[1])  # conftest
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, *sys.path]))
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    ).stdout
    assert "EPOCHS 4" in out
    assert int(out.split("WARNINGS")[1].split()[0]) >= 1
    run = read_run(str(tmp_path / "saliency"))
    assert run.scalars["saliency/confidence"][0][0] == 0  # step 0 was complete before the limit
    assert run.images["saliency/probes"][0][0] == 0
    assert len(run.images["saliency/probes"][0][1]) == 8
