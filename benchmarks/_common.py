"""What the benchmark scripts share: workloads, the bare-gradient reference, timing, probes.

The scripts are run as `python benchmarks/<name>.py`, so this folder is `sys.path[0]` and they
import this module as `_common`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

from saliency_callback import Runtime, SaliencyCallback, ShortcutData, make_shortcut_data

NUM_PROBES = 32
NUM_CLASSES = 10


# -- workloads --------------------------------------------------------------------------------


def make_probes(size: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """32 probe images in [0, 1] and labels (class ids of the 10-way head)."""
    if kind == "random":
        rng = np.random.default_rng(1)
        images = rng.random((NUM_PROBES, size, size, 3)).astype(np.float32)
        return images, rng.integers(0, NUM_CLASSES, NUM_PROBES)
    data = make_shortcut_data(NUM_PROBES, image_size=size, num_classes=6, seed=1)
    return data.images, data.labels


def small_cnn(
    shape: tuple[int, int, int], num_classes: int = NUM_CLASSES, stem_stride: int = 1
) -> keras.Model:
    """Conv(16) -> pool -> Conv(32) -> pool -> Conv(64) -> GAP -> Dense(softmax)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(16, 3, strides=stem_stride, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(num_classes, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name="small_cnn")


def mobilenet(size: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(
        input_shape=(size, size, 3), weights=None, classes=NUM_CLASSES
    )


@dataclass(frozen=True)
class Workload:
    name: str
    build: Callable[[], keras.Model]
    size: int
    gradcam_layer: str
    title: str  # as the tables in the docs name it


WORKLOADS = {
    "cnn": Workload("cnn", lambda: small_cnn((64, 64, 3)), 64, "last_conv", "small CNN, 64x64"),
    "mobilenet": Workload("mobilenet", lambda: mobilenet(96), 96, "out_relu", "MobileNetV2, 96x96"),
}


# -- the bare TensorFlow reference ------------------------------------------------------------


class GradientReference:
    """Hand-written compiled gradient code for one model (no package code involved).

    The pre-softmax logits are `model.layers[-1].input` times the Dense head's kernel; the
    target is their argmax. `vanilla_fn` is the gradient of the target logit w.r.t. the input,
    `gradcam_fn` Grad-CAM at `gradcam_layer` (channel weights, ReLU, bilinear upsampling).
    """

    def __init__(self, model: keras.Model, gradcam_layer: str) -> None:
        head = model.layers[-1]
        if not isinstance(head, keras.layers.Dense):
            raise ValueError(f"expected a Dense head, received {type(head).__name__}")
        self.head = head
        self.features = keras.Model(model.inputs, head.input)
        self.cam_features = keras.Model(
            model.inputs, [model.get_layer(gradcam_layer).output, head.input]
        )
        self.shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        spec_x = tf.TensorSpec((None, *self.shape), tf.float32)
        self.vanilla_fn = tf.function(self._vanilla, input_signature=[spec_x])
        self.gradcam_fn = tf.function(self._gradcam, input_signature=[spec_x])

    def _logits(self, features: tf.Tensor) -> tf.Tensor:
        return tf.matmul(features, self.head.kernel) + self.head.bias

    def _vanilla(self, x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = self._logits(self.features(x, training=False))
            targets = tf.argmax(logits, axis=-1, output_type=tf.int32)
            score = tf.gather(logits, targets, axis=1, batch_dims=1)
        return tape.gradient(score, x)

    def _gradcam(self, x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            acts, features = self.cam_features(x, training=False)
            tape.watch(acts)
            logits = self._logits(features)
            targets = tf.argmax(logits, axis=-1, output_type=tf.int32)
            score = tf.gather(logits, targets, axis=1, batch_dims=1)
        grads = tape.gradient(score, acts)
        weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * acts, axis=-1, keepdims=True))
        return tf.image.resize(cam, self.shape[:2], method="bilinear")


# -- measurement ------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Returns (wall ms, process CPU ms over all threads, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3, out


def relative_diff(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).reshape(b.shape)
    scale = float(np.max(np.abs(b))) or 1.0
    return float(np.max(np.abs(a - b))) / scale


def dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def environment() -> str:
    """Versions, CPUs and the current load average, for the first line of a report."""
    return (
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )


# -- the callback as a user sets it up ---------------------------------------------------------


def full_callback(probes: ShortcutData, log_dir: str) -> SaliencyCallback:
    """A callback with labels, masks and class names (captions, mask metrics, every scalar)."""
    return SaliencyCallback(
        probes.images,
        labels=probes.labels,
        masks=probes.masks,
        class_names=list(probes.class_names),
        method="vanilla",
        log_dir=log_dir,
        runtime=Runtime(strict=True),
    )
