"""The callback is invisible to training: bitwise-identical weights, optimizer and BN state."""

from __future__ import annotations

import io
import json
import random
from contextlib import redirect_stdout

import keras
import numpy as np
import pytest
import tensorflow as tf

import saliency_callback as sc

SHAPE = (10, 10, 3)


def bn_dropout_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input(SHAPE, name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Dropout(0.3, name="drop1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="drop2")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inp, out, name="net")
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


def data():
    rng = np.random.default_rng(7)
    return rng.random((32, *SHAPE)).astype(np.float32), rng.integers(0, 3, 32)


def train(callbacks, seed=3):
    model = bn_dropout_model(seed)
    x, y = data()
    keras.utils.set_random_seed(seed)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=callbacks, shuffle=True)
    state = [v.numpy().copy() for v in model.weights]  # includes BN moving statistics
    opt = [v.numpy().copy() for v in model.optimizer.variables]  # includes the iteration count
    return model, state, opt


METHODS = ["vanilla", "smoothgrad", "integrated_gradients", "gradcam"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("with_masks", [False, True], ids=["no-masks", "masks"])
def test_training_is_bitwise_identical_with_and_without_the_callback(
    tmp_path, method, with_masks, op_determinism
):
    _, ref_state, ref_opt = train([])
    probes = np.random.default_rng(0).random((4, *SHAPE)).astype(np.float32)
    masks = np.zeros((4, 10, 10), bool)
    masks[:, 2:8, 2:8] = True
    cb = sc.SaliencyCallback(
        probes,
        labels=[0, 1, 2, 0],
        masks=masks if with_masks else None,
        log_dir=str(tmp_path),
        method=method,
        target="label",
        runtime=sc.Runtime(log_before_training=True, strict=True),
    )
    model, state, opt = train([cb])
    # With masks, the background tests (forward passes on counterfactual probes) ran too.
    assert ("saliency_background_flip_rate" in cb.model.history.history) == with_masks
    assert len(state) == len(ref_state) and len(opt) == len(ref_opt)
    for a, b in zip(ref_state + ref_opt, state + opt, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations.numpy()) == 3 * 4
    moving = model.get_layer("bn").moving_mean.numpy()
    assert np.abs(moving).sum() > 0  # the BN statistics did move during training


def summary_text(model) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        model.summary()
    return out.getvalue()


def test_config_summary_and_save_reload_are_unchanged(tmp_path):
    x, y = data()
    plain = bn_dropout_model(0)
    plain.fit(x, y, epochs=2, verbose=0)
    model = bn_dropout_model(0)
    config = json.dumps(model.get_config(), sort_keys=True, default=str)
    probes = np.random.default_rng(0).random((3, *SHAPE)).astype(np.float32)
    cb = sc.SaliencyCallback(
        probes,
        log_dir=str(tmp_path),
        method="gradcam",
        runtime=sc.Runtime(strict=True),
    )
    model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    assert json.dumps(model.get_config(), sort_keys=True, default=str) == config
    assert summary_text(model) == summary_text(plain)
    assert [layer.name for layer in model.layers] == [layer.name for layer in plain.layers]
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


def test_global_random_state_is_not_consumed(tmp_path):
    model = bn_dropout_model(0)
    probes = np.random.default_rng(0).random((3, *SHAPE)).astype(np.float32)
    cb = sc.SaliencyCallback(
        probes,
        log_dir=str(tmp_path),
        method=sc.SmoothGrad(n_samples=4),
        runtime=sc.Runtime(strict=True),
    )
    cb.set_model(model)
    cb.on_train_begin()
    seed_gen = [layer.seed_generator for layer in model.layers if hasattr(layer, "seed_generator")]
    random.seed(1)
    np.random.seed(1)
    tf.random.set_seed(1)
    before = (
        random.getstate(),
        np.random.get_state()[1].copy(),
        tf.random.get_global_generator().state.numpy().copy(),
        [g.state.numpy().copy() for g in seed_gen],
    )
    for epoch in range(3):
        cb.on_epoch_end(epoch, {})
    cb.on_train_end()
    assert random.getstate() == before[0]
    np.testing.assert_array_equal(np.random.get_state()[1], before[1])
    np.testing.assert_array_equal(tf.random.get_global_generator().state.numpy(), before[2])
    for g, s in zip(seed_gen, before[3], strict=True):
        np.testing.assert_array_equal(g.state.numpy(), s)
    # The next draws are what they would have been without the callback.
    assert random.random() == random.Random(1).random()
