"""The callback's warm-up at `on_train_begin`: the first-time work happens before training, and
the event files are the same as without it (read back with TensorBoard's reader)."""

from __future__ import annotations

import keras
import numpy as np
from conftest import tiny_cnn
from tb_events import read_run

from saliency_callback import Runtime, SaliencyCallback, make_shortcut_data

SIZE = 16


def _fit(tmp_path, name, monkeypatch=None):
    """Two epochs at learning rate 0: the same weights in every fit, so the same maps."""
    data = make_shortcut_data(12, image_size=SIZE, seed=0)
    model = tiny_cnn((SIZE, SIZE, 3), classes=3)
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "sparse_categorical_crossentropy")
    cb = SaliencyCallback(
        data.images[:4],
        data.labels[:4],
        data.masks[:4],
        log_dir=str(tmp_path / name),
        runtime=Runtime(strict=True),
    )
    traces = []

    class Traces(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            traces.append(cb._explainer.tracing_count)

    model.fit(data.images, data.labels, epochs=2, batch_size=4, verbose=0, callbacks=[Traces(), cb])
    return read_run(str(tmp_path / name / "saliency")), traces, cb


def test_warm_up_traces_before_training_and_changes_no_event(tmp_path, monkeypatch, op_determinism):
    # Two separate fits compared bitwise: TensorFlow's op determinism for both (conftest).
    warm, traces, cb = _fit(tmp_path, "warm")
    # Everything was traced before the first epoch began, and nothing after.
    assert traces[0] > 0 and traces == [traces[0]] * 2
    assert cb._explainer.tracing_count == traces[0]
    monkeypatch.setattr(SaliencyCallback, "_warm_up", lambda self: None)
    cold, cold_traces, _ = _fit(tmp_path, "cold")
    assert cold_traces[0] == 0  # without it, the first logged epoch traced
    assert warm.tags == cold.tags and warm.descriptions == cold.descriptions
    assert warm.scalars.keys() == cold.scalars.keys()
    for tag, values in cold.scalars.items():  # tag by tag, step by step, value by value
        assert [s for s, _ in warm.scalars[tag]] == [s for s, _ in values]
        np.testing.assert_array_equal([v for _, v in warm.scalars[tag]], [v for _, v in values])
    assert warm.texts == cold.texts
    for tag, steps in cold.images.items():
        assert [s for s, _ in warm.images[tag]] == [s for s, _ in steps]
        for (_, ours), (_, theirs) in zip(warm.images[tag], steps, strict=True):
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs, strict=True):
                np.testing.assert_array_equal(a, b)
