"""Models built by hand, probe sets and small fits that the rooms' tests share.

- `background_reader` / `object_reader`: models whose weights are set so that they read only
  the (class-coloured) background, or only the object: independent truth for the background
  tests;
- `probe_set`: probes whose class colour is either the background or the object;
- `PreemptAt`: a callback that stops a fit at an epoch, as a preemption would.
"""

from __future__ import annotations

import time

import keras
import numpy as np
from tb_events import read_run

import saliency_callback as sc

K, N, S = 3, 9, 12  # classes, probes, image size


def probe_set(seed: int = 0, *, object_reads_class: bool, classes: int = K):
    """Probes with a 4x4 object at a random place. Either the background is the class colour
    and the object neutral grey (`object_reads_class=False`), or the object is the class colour
    and the background a grey of random brightness (`True`). Class c's colour is channel c."""
    rng = np.random.default_rng(seed)
    labels = np.arange(N) % classes
    images = np.zeros((N, S, S, 3), np.float32)
    masks = np.zeros((N, S, S), bool)
    for i, c in enumerate(labels):
        y, x = rng.integers(0, S - 4, 2)
        masks[i, y : y + 4, x : x + 4] = True
        colour = np.eye(3, dtype=np.float32)[c]
        grey = np.full(3, rng.uniform(0.2, 0.8), np.float32)
        images[i] = grey if object_reads_class else colour
        images[i][masks[i]] = colour if object_reads_class else 0.5
    return images, labels, masks


def background_reader() -> keras.Model:
    """Logits = the image's mean colour: the (class-coloured) background dominates it."""
    inp = keras.Input((S, S, 3))
    dense = keras.layers.Dense(K, activation="softmax", name="head")
    out = dense(keras.layers.GlobalAveragePooling2D()(inp))
    dense.set_weights([np.eye(3, dtype=np.float32) * 10, np.zeros(3, np.float32)])
    return frozen(keras.Model(inp, out))


def object_reader() -> keras.Model:
    """Logits = the largest colourfulness (channel minus the pixel's grey level): zero on any
    grey background, the class colour on the object."""
    inp = keras.Input((S, S, 3))
    conv = keras.layers.Conv2D(3, 1, activation="relu", name="chroma")
    x = keras.layers.GlobalMaxPooling2D()(conv(inp))
    dense = keras.layers.Dense(K, activation="softmax", name="head")
    out = dense(x)
    conv.set_weights([(np.eye(3) - 1 / 3).reshape(1, 1, 3, 3).astype(np.float32), np.zeros(3)])
    dense.set_weights([np.eye(3, dtype=np.float32) * 10, np.zeros(3, np.float32)])
    return frozen(keras.Model(inp, out))


def frozen(model: keras.Model) -> keras.Model:
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    return model


def fit_with_callback(model, tmp_path, images, labels, masks, **kwargs):
    cb = sc.SaliencyCallback(
        images,
        labels=labels,
        masks=masks,
        log_dir=str(tmp_path),
        runtime=sc.Runtime(strict=True),
        **kwargs,
    )
    history = model.fit(images, labels, epochs=2, verbose=0, callbacks=[cb])
    return cb, history, read_run(str(tmp_path / "saliency"))


def vanilla_callback(log_dir, images, labels=None, masks=None, **kwargs):
    """A strict callback with the cheapest method (these tests are about the background)."""
    return sc.SaliencyCallback(
        images,
        labels=labels,
        masks=masks,
        log_dir=str(log_dir),
        method="vanilla",
        runtime=sc.Runtime(strict=True),
        **kwargs,
    )


class PreemptedError(Exception):
    pass


def next_second() -> None:
    """Waits for the next whole second, before a fit resumed in the same process.

    TensorFlow names event files `...<unix second>.<host>.<pid>.<counter>.v2`: within one
    process and one second, counter 10 sorts before counter 9, and readers (ours and
    TensorBoard's) take files in name order. A real restart (a new process) takes longer."""
    second = int(time.time())
    while int(time.time()) == second:
        time.sleep(0.02)


class PreemptAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise PreemptedError


def entry_point_installed() -> bool:
    from importlib import metadata

    return any(e.name == "saliency" for e in metadata.entry_points(group="tensorboard_plugins"))
