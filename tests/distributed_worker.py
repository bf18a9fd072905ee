"""One `tf.distribute` scenario in a fresh process, for `test_distributed.py`.

Logical CPU devices and `MultiWorkerMirroredStrategy` must be set up before TensorFlow
initialises its devices, which the pytest process has already done; so each scenario runs here:

    python distributed_worker.py mirrored OUT_DIR
    TF_CONFIG=... python distributed_worker.py multiworker OUT_DIR

Each writes its event files under `OUT_DIR` and a `result.json` that the test checks.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf

MODE, OUT = sys.argv[1], sys.argv[2]
N, SHAPE, EPOCHS, BATCH = 4, (12, 12, 3), 2, 8
LABELS = [0, 1, 2, 0]
CLASS_NAMES = ["a", "b", "c"]

tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)
if MODE == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
elif MODE == "multiworker":
    STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()  # before any other TF op runs
else:
    raise SystemExit(f"unknown mode {MODE!r}")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from conftest import images, tiny_cnn  # noqa: E402

from saliency_callback.training.callback import SaliencyCallback  # noqa: E402
from saliency_callback.training.options import Runtime  # noqa: E402


class RecordingCallback(SaliencyCallback):
    """Records, in this process, which epoch-end hooks ran and which steps were computed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch_ends: list[int] = []
        self.logged_steps: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append(int(epoch))
        super().on_epoch_end(epoch, logs)

    def log_step(self, step, logs=None, initial=False):
        self.logged_steps.append(int(step))
        return super().log_step(step, logs, initial=initial)


def callback(log_dir: str) -> RecordingCallback:
    return RecordingCallback(
        images(N, SHAPE),
        np.array(LABELS),
        log_dir=log_dir,
        class_names=CLASS_NAMES,
        runtime=Runtime(log_before_training=True, strict=True),
    )


def train_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((16, *SHAPE)).astype(np.float32), rng.integers(0, 3, 16)


def compiled(weights=None) -> keras.Model:
    model = tiny_cnn(shape=SHAPE)
    if weights is not None:
        model.set_weights(weights)
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def fit(model: keras.Model, cb: RecordingCallback) -> list[float]:
    x, y = train_data()
    history = model.fit(
        x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0, callbacks=[cb]
    )
    return [float(v) for v in history.history["loss"]]


def variable_types(model: keras.Model) -> list[str]:
    return sorted({type(getattr(v, "value", v)).__name__ for v in model.weights})


def run_mirrored() -> dict:
    plain = compiled()
    initial = [w.copy() for w in plain.get_weights()]
    with STRATEGY.scope():
        mirrored = compiled(initial)
    plain_cb = callback(os.path.join(OUT, "plain"))
    mirrored_cb = callback(os.path.join(OUT, "mirrored"))
    plain_loss = fit(plain, plain_cb)
    mirrored_loss = fit(mirrored, mirrored_cb)
    # The callback's output for the mirrored model's trained weights, without any strategy:
    # the same weights must give the same images, bit for bit.
    reference = compiled(mirrored.get_weights())
    ref_cb = callback(os.path.join(OUT, "reference"))
    ref_cb.set_model(reference)
    ref_cb.on_train_begin()
    ref_cb.log_step(EPOCHS - 1)
    ref_cb.on_train_end()
    diffs = [
        float(np.abs(a - b).max())
        for a, b in zip(plain.get_weights(), mirrored.get_weights(), strict=True)
    ]
    return {
        "replicas": int(STRATEGY.num_replicas_in_sync),
        "model_strategy": type(mirrored.distribute_strategy).__name__,
        "variable_types": variable_types(mirrored),
        "plain_loss": plain_loss,
        "mirrored_loss": mirrored_loss,
        "max_weight_diff": max(diffs),
        "plain_steps": plain_cb.logged_steps,
        "mirrored_steps": mirrored_cb.logged_steps,
        "plain_traces": plain_cb._explainer.tracing_count,
        "mirrored_traces": mirrored_cb._explainer.tracing_count,
    }


def work_around_keras_multi_worker_fit(model: keras.Model) -> None:
    """Two Keras 3 bugs make `fit` fail under MultiWorkerMirroredStrategy before any callback
    runs (keras-team/keras#20585, tensorflow/tensorflow#72388), both with TF's
    "Attempt to convert a value (PerReplica...)" / "Invalid reduction dimension 0" errors:

    - `_maybe_symbolic_build` passes the whole `(x, y)` batch to `strategy.reduce`, which the
      collective strategy cannot reduce: build the model's state from a local batch instead;
    - `reduce_per_replica` reduces the scalar logs with `axis=0`: use the local values (the
      loss metric's variables are synchronised on read anyway).

    Gradients are still all-reduced across the workers by the optimizer; training, the epoch
    loop and the callbacks are Keras's own.
    """
    from keras.src.backend.tensorflow import trainer

    trainer._collective_all_reduce_multi_worker = lambda strategy: False
    x, y = train_data()

    def build_locally(iterator=None, data_batch=None):
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=(x[:BATCH], y[:BATCH]))

    model._maybe_symbolic_build = build_locally


def run_multiworker() -> dict:
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    with STRATEGY.scope():
        model = compiled()
    work_around_keras_multi_worker_fit(model)
    cb = callback(os.path.join(OUT, "logs"))
    loss = fit(model, cb)
    # A plain (non-collective) call: the trained, synchronised weights on the probes.
    probs = np.asarray(model(images(N, SHAPE), training=False))
    return {
        "task_index": int(task["index"]),
        "replicas": int(STRATEGY.num_replicas_in_sync),
        "model_strategy": type(model.distribute_strategy).__name__,
        "variable_types": variable_types(model),
        "is_chief": bool(cb._is_chief),
        "epoch_ends": cb.epoch_ends,
        "logged_steps": cb.logged_steps,
        "loss": loss,
        "probe_probs": probs.tolist(),
        "weights": [w.ravel().tolist() for w in model.get_weights()],
    }


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    result = run_mirrored() if MODE == "mirrored" else run_multiworker()
    with open(os.path.join(OUT, "result.json"), "w") as f:
        json.dump(result, f)
