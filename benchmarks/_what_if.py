"""The what-if rows of `bench_callback.py`: cheaper ways of writing the same content (fix
candidates, e.g. PNG compression), timed on a scratch writer with the pixels the callback
wrote."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from _common import (
    timed,
)
from PIL import Image
from tensorboard.plugins.image import metadata as tb_image_metadata

from saliency_callback import SaliencyCallback


def encode_all(images: dict[str, np.ndarray], compression: int = -1) -> int:
    """PNG-encodes the images as `tf.summary.image` does (one batched op per tag, which spreads
    the images of a batch over the cores); returns the encoded bytes."""
    total = 0
    for data in images.values():
        pngs = tf.image.encode_png(data, compression=compression).numpy()
        total += sum(len(png) for png in pngs)
    return total


def what_if(
    cb: SaliencyCallback,
    written: dict[str, np.ndarray],
    result: Any,
    repeats: int,
    tmp: str,
) -> list[tuple[str, float, str]]:
    """Times cheaper ways of writing the same content (fix candidates), on a scratch writer."""
    writer = tf.summary.create_file_writer(os.path.join(tmp, "whatif"))
    overview = {k: v for k, v in written.items() if k.endswith("overview")}
    panels = {k: v for k, v in written.items() if not k.endswith("overview")}
    scalars = cb._scalars(result, 0, None, {})
    tags = list(scalars)
    values = np.asarray(list(scalars.values()), np.float32)

    @tf.function(
        input_signature=[tf.TensorSpec((len(tags),), tf.float32), tf.TensorSpec((), tf.int64)]
    )
    def write_scalars(v: tf.Tensor, step: tf.Tensor) -> None:
        for i, tag in enumerate(tags):
            tf.summary.scalar(tag, v[i], step=step)

    image_metadata = tb_image_metadata.create_summary_metadata(display_name=None, description="")

    def summaries(images: dict[str, np.ndarray]) -> None:
        with writer.as_default():
            for tag, data in images.items():
                tf.summary.image(tag, data, step=0, max_outputs=len(data))

    def eager_scalars() -> None:
        with writer.as_default():
            for tag, value in scalars.items():
                tf.summary.scalar(tag, value, step=0)

    def compiled_scalars() -> None:
        with writer.as_default():
            write_scalars(values, tf.constant(0, tf.int64))

    def encoded(images: dict[str, np.ndarray], compression: int) -> None:
        """Same summaries as `tf.summary.image`, from PNGs encoded here (`tf.summary.write`)."""
        with writer.as_default():
            for tag, data in images.items():
                pngs = tf.image.encode_png(data, compression=compression)
                dims = tf.stack([tf.as_string(data.shape[2]), tf.as_string(data.shape[1])])
                tensor = tf.concat([dims, pngs], axis=0)
                tf.summary.write(tag, tensor, step=0, metadata=image_metadata)

    def half_overview() -> None:
        """Panels in full, the overview at half resolution (bilinear), compression=1."""
        grid = next(iter(overview.values()))[0]
        small = Image.fromarray(grid).resize(
            (grid.shape[1] // 2, grid.shape[0] // 2), Image.Resampling.BILINEAR
        )
        encoded({**panels, "half_overview": np.asarray(small)[None]}, 1)

    attributions = np.asarray(result.attributions)

    def per_channel_max() -> np.ndarray:
        out = np.abs(attributions[..., 0])
        for c in range(1, attributions.shape[-1]):
            np.maximum(out, np.abs(attributions[..., c]), out=out)
        return out

    assert np.array_equal(per_channel_max(), np.abs(attributions).max(axis=-1))
    sizes = {lvl: encode_all(written, lvl) for lvl in (-1, 1)}
    n_scalars = len(tags)
    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("image summaries, overview + panels (now)", lambda: summaries(written), ""),
        ("image summaries, panels only", lambda: summaries(panels), ""),
        ("image summaries, overview only", lambda: summaries(overview), ""),
        ("PNG encode all, zlib default (now)", lambda: encode_all(written), f"{sizes[-1]} B"),
        ("PNG encode all, compression=1", lambda: encode_all(written, 1), f"{sizes[1]} B"),
        ("pre-encoded write, default zlib", lambda: encoded(written, -1), "same bytes as now"),
        ("pre-encoded write, compression=1", lambda: encoded(written, 1), ""),
        ("  same, panels only", lambda: encoded(panels, 1), ""),
        ("  same, panels + half-resolution overview", half_overview, ""),
        (f"{n_scalars} scalars, eager tf.summary.scalar (now)", eager_scalars, ""),
        (f"{n_scalars} scalars, one tf.function", compiled_scalars, ""),
        (
            "max_abs reduction: np.abs(a).max(axis=-1) (now)",
            lambda: np.abs(attributions).max(axis=-1),
            "engine, and again in _scalars with masks",
        ),
        ("max_abs reduction: np.maximum per channel", per_channel_max, "identical result"),
    ]
    compiled_scalars()  # trace once
    out = []
    try:
        for name, fn, note in cases:
            fn()
            ms = statistics.median(timed(fn)[0] for _ in range(repeats))
            out.append((name, ms, note))
    finally:
        writer.close()
    return out
