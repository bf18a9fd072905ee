"""A folder of images, a `keras.applications` backbone, probes from the validation split.

The workflow most users have: images on disk, one folder per class, loaded with
`keras.utils.image_dataset_from_directory`; a `keras.applications` backbone; and a
`SaliencyCallback` that takes its probes from the validation dataset itself (the first
`num_probes` examples of a `tf.data.Dataset` passed as `images`).

So that it runs offline, the script first writes a small folder of PNGs: synthetic shapes
(`saliency_callback.data.datasets`) whose background colour agrees with the class on 95% of the
images, a shortcut planted on purpose. Next to `val/` it writes `val_masks/`, the objects'
masks with the same folder layout and file names: with masks the callback swaps the probes'
backgrounds every epoch and the recommended alarm watches whether the predictions follow them.

Run (from the repository root):
    python examples/image_folder.py             # a few minutes on 2 CPU cores
    python examples/image_folder.py --quick     # a tiny run (the smoke test's mode)
    tensorboard --logdir logs/image_folder --samples_per_plugin images=100
    python examples/read_verdict.py logs/image_folder
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

import saliency_callback as sc


def write_folder(root: Path, n_train: int, n_val: int, size: int) -> tuple[str, ...]:
    """Writes `train/<class>/*.png`, `val/<class>/*.png` and `val_masks/<class>/*.png`."""
    shutil.rmtree(root, ignore_errors=True)
    splits = {"train": (n_train, 0), "val": (n_val, 1)}
    for split, (n, seed) in splits.items():
        data = sc.make_shortcut_data(n, image_size=size, agreement=0.95, seed=seed)
        for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
            name = f"{data.class_names[label]}/{i:04d}.png"
            for folder, pixels in ((split, image * 255), (f"{split}_masks", data.masks[i] * 255)):
                if split == "train" and folder.endswith("masks"):
                    continue  # training needs no masks
                path = root / folder / name
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.round(pixels).astype(np.uint8)).save(path)
    return data.class_names


def load(root: Path, size: int) -> tuple[tf.data.Dataset, tf.data.Dataset, list[str]]:
    """The training dataset, and the validation dataset zipped with its masks."""
    common = dict(image_size=(size, size), batch_size=32)
    train = keras.utils.image_dataset_from_directory(root / "train", seed=0, **common)
    # shuffle=False: the images and the masks are read in the same (sorted) order
    val = keras.utils.image_dataset_from_directory(root / "val", shuffle=False, **common)
    val_masks = keras.utils.image_dataset_from_directory(
        root / "val_masks",
        labels=None,
        color_mode="grayscale",
        shuffle=False,
        interpolation="nearest",
        **common,
    )
    probes = tf.data.Dataset.zip((val, val_masks)).map(
        lambda xy, m: (xy[0], xy[1], m[..., 0] > 127)
    )
    # sorted order lists one class after the other: mix them before the callback takes the
    # first `num_probes` (a fixed seed, so every run takes the same probes)
    probes = probes.unbatch().shuffle(1024, seed=0)
    return train, probes, train.class_names


def build_model(size: int, num_classes: int) -> keras.Model:
    """MobileNetV2 (alpha 0.35, random weights: the script runs offline) and a softmax head."""
    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
    )
    # Trained from scratch for a few hundred steps: keras.applications' BatchNormalization
    # momentum (0.999) would leave the moving statistics, which inference uses (and so the
    # callback: training=False), far from the batches' for thousands of steps.
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    inp = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)  # the folder's 0-255 pixels
    out = keras.layers.Dense(num_classes, activation="softmax")(backbone(x))
    model = keras.Model(inp, out)
    model.compile(
        keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/image_folder"))
    parser.add_argument("--logdir", default="logs/image_folder")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="a tiny run, for the smoke test")
    args = parser.parse_args(argv)
    n_train, n_val, size, probes_n, epochs = 1200, 96, 64, 16, args.epochs
    if args.quick:
        n_train, n_val, size, probes_n, epochs = 64, 16, 32, 6, 2
    start = time.time()

    class_names = write_folder(args.data, n_train, n_val, size)
    print(f"Wrote {n_train} training and {n_val} validation images of {class_names} to {args.data}")
    train, probes, names = load(args.data, size)
    shutil.rmtree(args.logdir, ignore_errors=True)  # one run per invocation
    saliency = sc.SaliencyCallback(
        probes,  # a tf.data.Dataset of (image, label, mask): the callback takes the first ones
        num_probes=probes_n,
        class_names=names,
        log_dir=args.logdir,
        method="vanilla" if args.quick else sc.methods.RECOMMENDED,
        alarm=sc.ShortcutAlarm(),  # the accuracy the background costs, at its lower bound
        display=sc.Display(value_range=(0, 255)),  # the probes' pixels are 0-255 floats
    )
    model = build_model(size, len(names))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        model.fit(
            train,
            epochs=epochs,
            verbose=2,
            callbacks=[saliency, keras.callbacks.TensorBoard(args.logdir)],
        )
    for w in caught:
        if "SaliencyCallback" in str(w.message):
            print(f"warning: {w.message}")

    reliance = saliency.history.get("background/reliance", [])
    print(f"\nreliance per logged epoch: {[round(v, 2) for _, v in reliance]}")
    if saliency.alarm_events:
        print(f"VERDICT: shortcut. {saliency.alarm_events[0].message}")
    else:
        print("VERDICT: no alarm: the predictions did not follow the swapped backgrounds.")
    print(f"Total time {time.time() - start:.0f} s. Next:")
    print(f"  python examples/read_verdict.py {args.logdir}")
    print(f"  tensorboard --logdir {args.logdir} --samples_per_plugin images=100")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
