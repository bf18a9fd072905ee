"""Shared fixtures: tiny models with known behaviour, and small images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The TensorBoard server and Chromium helpers live with the script that also uses them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()


def pytest_collection_modifyitems(config, items):
    """`tf_only` tests (TensorFlow-specific features, or references written with TF) are
    skipped on the other backends; run e.g. `KERAS_BACKEND=jax pytest -m "not tf_only"`."""
    if BACKEND == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"TensorFlow-only test; the Keras backend is {BACKEND}")
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)


def gradient(fn, x) -> np.ndarray:
    """`d sum(fn(x)) / dx` by the backend's own autodiff (independent of the library)."""
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        return np.asarray(jax.grad(lambda v: jnp.sum(fn(v)))(jnp.asarray(x)))
    if BACKEND == "torch":
        import torch

        t = keras.ops.convert_to_tensor(np.asarray(x)).detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(fn(t).sum(), [t])
        return g.detach().cpu().numpy()
    import tensorflow as tf

    t = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        total = tf.reduce_sum(fn(t))
    return tape.gradient(total, t).numpy()


def linear_model(shape=(6, 5, 3), classes=4, activation="softmax", seed=0) -> keras.Model:
    """Flatten -> Dense: the gradient of class c is column c of the kernel."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    out = keras.layers.Dense(classes, activation=activation, name="head")(
        keras.layers.Flatten()(inp)
    )
    return keras.Model(inp, out)


def tiny_cnn(shape=(12, 12, 3), classes=3, activation="softmax", seed=0, smooth=True):
    """Conv -> Conv -> GAP -> Dense, smooth activations so finite differences are accurate."""
    keras.utils.set_random_seed(seed)
    act = "tanh" if smooth else "relu"
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(6, 3, padding="same", activation=act, name="conv1")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation=act, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(classes, activation=activation, name="head")(x)
    return keras.Model(inp, out)


def images(n=5, shape=(12, 12, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


@pytest.fixture
def op_determinism():
    """TensorFlow's op determinism for one test (it is process-global: restored after), where
    a test claims exact equality between two trainings."""
    if BACKEND != "tensorflow":
        yield
        return
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if not was:
            tf_config.disable_op_determinism()


@pytest.fixture
def cnn() -> keras.Model:
    return tiny_cnn()


@pytest.fixture
def probe() -> np.ndarray:
    return images()
