"""The background worker: same event contents as the inline path, errors reported, no drops."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import images, tiny_cnn
from PIL import Image
from tb_events import read_run
from tensorboard.backend.event_processing import event_accumulator

import saliency_callback as sc
from saliency_callback.output.render import caption_height

SHAPE = (12, 12, 3)


def data(n=16):
    rng = np.random.default_rng(1)
    return rng.random((n, *SHAPE)).astype(np.float32), rng.integers(0, 3, n)


def masks(n):
    m = np.zeros((n, *SHAPE[:2]), bool)
    m[:, 3:9, 2:7] = True
    return m


def train(cb, epochs=3, lr=0.05, seed=0, **kw):
    model = tiny_cnn(shape=SHAPE, seed=seed)
    model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy")
    x, y = data()
    keras.utils.set_random_seed(seed)
    return model.fit(x, y, epochs=epochs, batch_size=4, verbose=0, callbacks=[cb], **kw)


def everything(log_dir, background, strict=False, **kw):
    """A callback writing every kind of summary: overview, probes, background, timeline,
    scalars, the alarm's text (threshold 1: it fires) and the pre-training step."""
    return sc.SaliencyCallback(
        images(6, SHAPE),
        labels=[0, 1, 2, 0, 1, 2],
        masks=masks(6),
        class_names=["a", "b", "c"],
        log_dir=str(log_dir),
        runtime=sc.Runtime(log_before_training=True, background_writer=background, strict=strict),
        alarm=sc.ShortcutAlarm(1.0, monitor="mass_in_mask"),
        **kw,
    )


class Threads:
    """Records the threads that call a `RunWriter`'s encoding and writing methods."""

    def __init__(self, writer):
        self.seen: dict[str, set[threading.Thread]] = {}
        for name in ("encode", "write_pngs", "scalars", "flush"):
            setattr(writer, name, self._wrap(name, getattr(writer, name)))

    def _wrap(self, name, method):
        def wrapped(*args, **kwargs):
            self.seen.setdefault(name, set()).add(threading.current_thread())
            return method(*args, **kwargs)

        return wrapped


def rendering_threads(monkeypatch) -> dict[str, list[int]]:
    """Records the thread (`threading.get_ident()`) of every call of the rendering: the panels,
    the background tests' panels and the timeline's tiles."""
    from saliency_callback.output.render import Renderer
    from saliency_callback.training import worker

    seen: dict[str, list[int]] = {}

    def recorded(name, function):
        def wrapped(*args, **kwargs):
            seen.setdefault(name, []).append(threading.get_ident())
            return function(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(Renderer, "panels", recorded("panels", Renderer.panels))
    for name in ("render_variant_panels", "overlay_tiles"):
        monkeypatch.setattr(worker, name, recorded(name, getattr(worker, name)))
    return seen


def test_worker_writes_exactly_what_the_inline_path_writes(tmp_path, op_determinism, monkeypatch):
    runs, threads, rendered, fitting = {}, {}, {}, {}
    for background in (True, False):
        log_dir = tmp_path / str(background)
        cb = everything(log_dir, background, strict=True)
        threads[background] = Threads(cb.writer)
        rendered[background] = rendering_threads(monkeypatch)
        hook, fitting[background] = cb.on_epoch_end, set()

        def on_epoch_end(epoch, logs=None, hook=hook, seen=fitting[background]):
            seen.add(threading.get_ident())  # the thread running `fit` (Keras calls it there)
            return hook(epoch, logs)

        cb.on_epoch_end = on_epoch_end
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the alarm
            history = train(cb, epochs=4)
        monkeypatch.undo()
        runs[background] = (read_run(str(log_dir / "saliency")), history.history)
    # The training thread never renders, encodes nor writes with the worker; inline, it does
    # all of it. Every logged step rendered its panels, background panels and timeline tiles
    # (the 4 epochs and the pre-training step; the panels once more in the warm-up).
    training = threading.current_thread()
    assert fitting[True] == fitting[False] == {training.ident}
    for name, calls in {"panels": 6, "render_variant_panels": 5, "overlay_tiles": 5}.items():
        assert len(rendered[True][name]) == len(rendered[False][name]) == calls, name
        assert training.ident not in rendered[True][name], name
        assert set(rendered[False][name]) == {training.ident}, name
    for name in ("encode", "write_pngs", "scalars", "flush"):
        (worker_thread,) = threads[True].seen[name]
        assert worker_thread is not training and worker_thread.name == "SaliencyCallback-writer"
        assert set(rendered[True]["panels"]) == {worker_thread.ident}
        assert threads[False].seen[name] == {training}
    (worker, worker_logs), (inline, inline_logs) = runs[True], runs[False]
    # the Keras logs are filled synchronously either way (NaN equals NaN: harm without pairs)
    np.testing.assert_equal(worker_logs, inline_logs)
    assert "saliency_mass_in_mask" in worker_logs
    expected_images = {
        "saliency/overview",
        "saliency/probes",
        "saliency/background",
        "saliency/timeline",
        "saliency/probe_boxes",
    }
    assert set(worker.images) == set(inline.images) == expected_images
    assert worker.tags == inline.tags and "saliency/alarm_message" in worker.texts
    np.testing.assert_equal(worker.scalars, inline.scalars)
    assert worker.texts == inline.texts
    assert worker.descriptions == inline.descriptions
    for tag, steps in worker.images.items():
        once = tag == "saliency/probe_boxes"  # written with the first step of a fit
        assert [s for s, _ in steps] == ([-1] if once else [-1, 0, 1, 2, 3])
        for (step_a, imgs_a), (step_b, imgs_b) in zip(steps, inline.images[tag], strict=True):
            assert step_a == step_b and len(imgs_a) == len(imgs_b)
            for a, b in zip(imgs_a, imgs_b, strict=True):
                np.testing.assert_array_equal(a, b)


class Failing:
    """Wraps `RunWriter.write_pngs` to raise at one step."""

    def __init__(self, writer, step):
        self.original, self.step = writer.write_pngs, step

    def __call__(self, tag, pngs, size, step, description=None):
        if step == self.step:
            raise OSError(28, "No space left on device")
        return self.original(tag, pngs, size, step, description)


@pytest.mark.parametrize("background", [True, False], ids=["worker", "inline"])
def test_a_write_error_is_a_warning_and_training_goes_on(tmp_path, background):
    cb = sc.SaliencyCallback(
        images(4, SHAPE),
        log_dir=str(tmp_path),
        runtime=sc.Runtime(background_writer=background),
    )
    cb.writer.write_pngs = Failing(cb.writer, 1)  # a full disk at step 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train(cb, epochs=4)
    assert len(history.history["loss"]) == 4
    failed = [str(w.message) for w in caught if "failed" in str(w.message)]
    assert len(failed) == 1 and "epoch 1" in failed[0] and "No space left" in failed[0]
    run = read_run(str(tmp_path / "saliency"))
    assert [s for s, _ in run.images["saliency/probes"]] == [0, 2, 3]  # step 0 is kept
    assert [s for s, _ in run.scalars["saliency/confidence"]] == [0, 2, 3]


class Epochs(keras.callbacks.Callback):
    """Records the epochs begun and ended; `before_begin` runs first at each epoch begin."""

    def __init__(self, before_begin=None):
        super().__init__()
        self.begun, self.ended, self.before_begin = [], [], before_begin

    def on_epoch_begin(self, epoch, logs=None):
        if self.before_begin is not None:
            self.before_begin()
        self.begun.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.ended.append(epoch)


def test_a_worker_error_raises_at_the_next_hook_with_strict(tmp_path):
    """Step 1 fails on the worker; once it has (the first callback waits for it), the next
    hook of the saliency callback, `on_epoch_begin(2)`, raises it: epoch 2 never starts."""
    cb = sc.SaliencyCallback(
        images(4, SHAPE), log_dir=str(tmp_path), runtime=sc.Runtime(strict=True)
    )
    cb.writer.write_pngs = Failing(cb.writer, 1)
    first, last = Epochs(before_begin=cb._worker.wait), Epochs()
    model = tiny_cnn(shape=SHAPE)
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    x, y = data()
    with pytest.raises(OSError, match="No space left") as info:
        model.fit(x, y, epochs=4, batch_size=4, verbose=0, callbacks=[first, cb, last])
    assert first.begun == [0, 1, 2] and last.begun == [0, 1] and last.ended == [0, 1]
    hooks = [e.name for e in info.traceback if e.path == Path(sc.callback.__file__)]
    assert hooks[0] == "on_epoch_begin", hooks


def test_a_slow_worker_delays_but_never_drops_or_reorders_steps(tmp_path):
    cb = sc.SaliencyCallback(
        images(4, SHAPE),
        log_dir=str(tmp_path),
        runtime=sc.Runtime(strict=True),
    )
    original = cb.writer.write_pngs
    active, most, order = [0], [0], []
    lock = threading.Lock()

    def slow(tag, pngs, size, step, description=None):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)  # slower than this tiny model's epochs
        order.append(step)
        original(tag, pngs, size, step, description)
        with lock:
            active[0] -= 1

    cb.writer.write_pngs = slow
    train(cb, epochs=6)
    assert most[0] == 1  # one step at a time
    assert order == sorted(order)
    run = read_run(str(tmp_path / "saliency"))
    for tag in ("saliency/overview", "saliency/probes", "saliency/timeline"):
        assert [s for s, _ in run.images[tag]] == list(range(6))
    assert [s for s, _ in run.scalars["saliency/confidence"]] == list(range(6))


def thumbnail(tile, size):
    h, w = size
    return np.asarray(Image.fromarray(tile).resize((w, h), Image.Resampling.BILINEAR), int)


# The columns of some timelines, by hand from the rule (up to 12 logged steps: all of them;
# beyond: every other one, then every fourth..., from the first, and always the latest).
TIMELINE_COLUMNS = {
    5: {-1: [-1], 2: [-1, 0, 1, 2], 4: [-1, 0, 1, 2, 3, 4]},
    15: {
        10: [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # 12 logged steps: every one
        11: [-1, 1, 3, 5, 7, 9, 11],  # 13: every other one
        12: [-1, 1, 3, 5, 7, 9, 11, 12],
        14: [-1, 1, 3, 5, 7, 9, 11, 13, 14],
    },
}


@pytest.mark.parametrize("epochs", [5, 15])
def test_the_timeline_shows_the_right_epochs(tmp_path, epochs):
    n = 3
    cb = sc.SaliencyCallback(
        images(n, SHAPE),
        log_dir=str(tmp_path),
        runtime=sc.Runtime(log_before_training=True, strict=True),
    )
    train(cb, epochs=epochs, lr=0.5)
    run = read_run(str(tmp_path / "saliency"))
    logged = [s for s, _ in run.images["saliency/probes"]]
    assert logged == list(range(-1, epochs))
    # The overlay tile of each probe at each step, from the per-probe panels (72x72 tiles:
    # 12x12 probes upscaled 6x), shrunk to the timeline's 32x32 thumbnails (2 px apart).
    overlays = {
        s: [thumbnail(p[-72:, 2 * 74 :], (32, 32)) for p in panels]
        for s, panels in run.images["saliency/probes"]
    }
    timelines = dict(run.images["saliency/timeline"])
    assert sorted(timelines) == logged
    for step, expected in TIMELINE_COLUMNS[epochs].items():
        (timeline,) = timelines[step]
        assert timeline.shape[1] == 2 + len(expected) * 34
        for j, column_step in enumerate(expected):
            x0 = 2 + j * 34
            for i in range(n):
                y0 = caption_height() + 2 + i * 34
                cell = timeline[y0 : y0 + 32, x0 : x0 + 32].astype(int)
                distance = {s: np.abs(cell - o[i]).mean() for s, o in overlays.items()}
                assert min(distance, key=distance.get) == column_step
                assert distance[column_step] < 1.0


def raw_images(run_dir, tag):
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    from tb_events import tensor_value

    return [(e.step, list(tensor_value(e))) for e in acc.Tensors(tag)]


def test_overview_pixel_budget_and_byte_cap(tmp_path):
    n, budget, cap = 40, 150_000, 400_000
    rng = np.random.default_rng(0)
    probes = rng.random((n, *SHAPE)).astype(np.float32)  # noise: the worst case for PNG
    cb = sc.SaliencyCallback(
        probes,
        log_dir=str(tmp_path),
        display=sc.Display(overview_pixels=budget),
        runtime=sc.Runtime(max_step_bytes=cap, strict=True),
    )
    with pytest.warns(UserWarning, match="max_step_bytes") as caught:
        train(cb, epochs=2)
    assert sum("max_step_bytes" in str(w.message) for w in caught) == 1  # once per fit
    run_dir = tmp_path / "saliency"
    run = read_run(str(run_dir))
    for _, (overview,) in run.images["saliency/overview"]:
        assert overview.shape[0] * overview.shape[1] <= budget
    for _, (timeline,) in run.images["saliency/timeline"]:
        assert timeline.shape[0] * timeline.shape[1] <= 2**21
    kept = [len(imgs) for _, imgs in run.images["saliency/probes"]]
    assert all(0 < k < n for k in kept)
    per_step: dict[int, int] = {}
    for tag in ("saliency/overview", "saliency/probes", "saliency/timeline"):
        for step, value in raw_images(run_dir, tag):
            per_step[step] = per_step.get(step, 0) + sum(len(b) for b in value[2:])
    assert sorted(per_step) == [0, 1] and max(per_step.values()) <= cap


def test_bad_new_arguments_fail_in_init(tmp_path):
    with pytest.raises(TypeError, match="background_writer"):
        sc.SaliencyCallback(
            images(2, SHAPE),
            log_dir=str(tmp_path),
            runtime=sc.Runtime(background_writer="yes"),
        )
    with pytest.raises(ValueError, match="max_step_bytes"):
        sc.SaliencyCallback(
            images(2, SHAPE),
            log_dir=str(tmp_path),
            runtime=sc.Runtime(max_step_bytes=0),
        )
    with pytest.raises(TypeError, match="overview_pixels"):
        sc.SaliencyCallback(
            images(2, SHAPE),
            log_dir=str(tmp_path),
            display=sc.Display(overview_pixels=1.5),
        )


AT_EXIT = """
import sys, time
from conftest import images, tiny_cnn
import saliency_callback as sc
strict = sc.Runtime(strict=True)
cb = sc.SaliencyCallback(images(4, (12, 12, 3)), log_dir=sys.argv[1], runtime=strict)
cb.set_model(tiny_cnn(shape=(12, 12, 3)))
cb.on_train_begin()
original = cb.writer.write_pngs
def slow(*args, **kwargs):
    time.sleep(0.5)  # still writing when the script ends
    original(*args, **kwargs)
cb.writer.write_pngs = slow
cb.on_epoch_end(0, {})
"""  # ... and the interpreter exits without on_train_end


def test_a_pending_step_is_written_when_the_interpreter_exits(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), *sys.path]))
    subprocess.run([sys.executable, "-c", AT_EXIT, str(tmp_path)], env=env, timeout=300, check=True)
    run = read_run(str(tmp_path / "saliency"))
    for tag in ("saliency/overview", "saliency/probes", "saliency/timeline"):
        assert [s for s, _ in run.images[tag]] == [0], tag
    assert [s for s, _ in run.scalars["saliency/confidence"]] == [0]
