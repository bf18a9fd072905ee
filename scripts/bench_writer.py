"""Times one logged step's PNG encode and event write: the writer without TensorFlow
(`RunWriter`: Pillow + `google-crc32c`) against TensorFlow's (`tf.image.encode_png` +
`tf.summary.write`), on the same images. Run: `python scripts/bench_writer.py [--repeats N]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def images(k: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour fields with some noise, like saliency overlays (not white noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    out = np.empty((k, height, width, 3), np.float32)
    for i in range(k):
        for c in range(3):
            f = rng.uniform(2, 9, size=2)
            out[i, :, :, c] = 127 + 100 * np.sin(f[0] * x * 6 + f[1] * y * 6 + i + c)
    out += rng.normal(0, 6, size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(tf, k: int, height: int, width: int, repeats: int) -> None:
    from tensorboard.plugins.image import metadata as image_metadata

    from saliency_callback.output.event_file import pillow_png
    from saliency_callback.output.writer import RunWriter

    data = images(k, height, width)
    meta = image_metadata.create_summary_metadata(display_name=None, description=None)
    step = iter(range(10**6))
    with tempfile.TemporaryDirectory() as root:
        ours = RunWriter(root, "ours")
        tf_writer = tf.summary.create_file_writer(os.path.join(root, "tf"))

        def tf_encode():
            return list(tf.image.encode_png(data, compression=1).numpy())

        def tf_write(pngs):
            size = [str(width).encode(), str(height).encode()]
            with tf_writer.as_default():
                tf.summary.write("t", tf.constant(size + pngs), step=next(step), metadata=meta)
            tf_writer.flush()

        def ours_write(pngs):
            ours.write_pngs("t", pngs, (height, width), next(step))
            ours.flush()

        tf_pngs, our_pngs = tf_encode(), pillow_png(data, 1)
        rows = {
            "encode, TensorFlow": best(tf_encode, repeats),
            "encode, Pillow": best(lambda: pillow_png(data, 1), repeats),
            "write, TensorFlow": best(lambda: tf_write(tf_pngs), repeats),
            "write, without TF": best(lambda: ours_write(our_pngs), repeats),
        }
        ours.close()
        tf_writer.close()
    size_tf, size_ours = sum(map(len, tf_pngs)), sum(map(len, our_pngs))
    print(f"{k} images {height}x{width}: PNG bytes TensorFlow {size_tf}, Pillow {size_ours}")
    for name, seconds in rows.items():
        print(f"  {name:20s} {seconds * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import tensorflow as tf

    for k, height, width in [(8, 64, 192), (16, 224, 672)]:
        bench(tf, k, height, width, args.repeats)


if __name__ == "__main__":
    main()
