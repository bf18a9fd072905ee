"""Does the object's hole keep its background's cue? The fills of `background.remove_objects`.

What it measures
    A background test pastes each probe's object onto another probe's background with that
    probe's own object removed (`only_bg`). If the fill of the removed object's hole loses the
    background's cue, the composite carries a weaker cue than the background it came from, and
    the harm estimate misses that shortcut. Blur and sharpness are the cues a fill loses most
    easily: a per-pixel fill puts sharp noise into a blurred background.

    For every image of a pool drawn from a sharpness family, with its exact object mask, each
    fill is applied and the hole's sharpness is compared with its own background's:

    - sharpness: the mean squared difference between neighbouring pixels (horizontal and
      vertical pairs), over pairs whose two pixels are both in the hole, and over pairs whose
      two pixels are both in the background at least 2 pixels from the object;
    - `abs log ratio`: the median over images of |log(hole / background)|; 0 when the hole is
      as sharp as its background;
    - per blur level (the cue's classes; on the photographic bed Gaussian sigma
      `_photo_beds.BLUR_SIGMAS`, class 0 sharp), the mean ratio hole / background; 1 keeps
      the cue;
    - `rank corr`: Spearman's correlation between the hole's and the background's sharpness
      over the pool: 1 when the hole's sharpness orders the images as their backgrounds do,
      i.e. the cue can still be read inside the hole.

    Fills: `shift` (the default: a shifted copy of the same background, `background.shift_fill`),
    `resample` (each pixel drawn from the background at random: the former default) and
    OpenCV's `inpaint` (Telea 2004, radius 3), which propagates the hole's border inwards.

How to run
    python benchmarks/bench_fills.py --markdown docs/detection.md
    python benchmarks/bench_fills.py --quick    # a small pool (the test suite)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from _markdown import command_line, load_average, table, write_section
from _photo_beds import make_photo_data
from scipy import ndimage, stats

import saliency_callback as sc
from saliency_callback.shortcuts import background as bg

NUM_CLASSES = 3


def telea(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """OpenCV's fast-marching inpainting (Telea 2004), radius 3, on 8-bit images."""
    out = np.empty_like(images)
    for i, (x, m) in enumerate(zip(images, masks, strict=True)):
        u8 = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
        out[i] = cv2.inpaint(u8, m.astype(np.uint8), 3, cv2.INPAINT_TELEA) / 255.0
    return out


FILLS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "shift (default)": lambda x, m: bg.remove_objects(x, m, fill="shift"),
    "resample (former default)": lambda x, m: bg.remove_objects(x, m, fill="resample"),
    "OpenCV inpaint (Telea)": telea,
}


def sharpness(image: np.ndarray, where: np.ndarray) -> float:
    """Mean squared difference of neighbouring pixels, over pairs both in `where`."""
    total, count = 0.0, 0
    for axis in (0, 1):
        both = np.logical_and(
            np.take(where, range(1, where.shape[axis]), axis=axis),
            np.take(where, range(where.shape[axis] - 1), axis=axis),
        )
        diff = (np.diff(image, axis=axis) ** 2).sum(-1)
        total, count = total + float(diff[both].sum()), count + int(both.sum())
    return total / count if count else float("nan")


def pools(n: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Images, masks and blur classes of each sharpness family, the cue always agreeing."""
    photo = make_photo_data(n, 32, NUM_CLASSES, 1.0, cue="photo_blur", bed_seed=seed, seed=seed)
    synthetic = sc.make_shortcut_data(
        n, image_size=24, num_classes=NUM_CLASSES, agreement=1.0, seed=seed, cue="blur"
    )
    return {
        "photo_blur (32 px)": (photo.images, photo.masks, photo.background_classes),
        "blur (synthetic, 24 px)": (
            synthetic.images,
            synthetic.masks,
            synthetic.background_classes,
        ),
    }


def measure(images: np.ndarray, masks: np.ndarray, classes: np.ndarray) -> list[list[str]]:
    rows = []
    far = np.stack([~ndimage.binary_dilation(m, iterations=2) for m in masks])
    own = np.array([sharpness(x, f) for x, f in zip(images, far, strict=True)])
    levels = sorted(set(classes.tolist()))
    for name, fill in FILLS.items():
        t = time.perf_counter()
        filled = fill(images, masks)
        ms = 1000 * (time.perf_counter() - t) / len(images)
        hole = np.array([sharpness(x, m) for x, m in zip(filled, masks, strict=True)])
        ok = np.isfinite(hole) & np.isfinite(own) & (own > 0) & (hole > 0)
        ratio = hole[ok] / own[ok]
        per_level = [f"{np.mean(ratio[classes[ok] == c]):.2f}" for c in levels]
        rho = stats.spearmanr(hole[ok], own[ok]).statistic
        rows.append(
            [name, f"{np.median(np.abs(np.log(ratio))):.2f}", *per_level, f"{rho:.2f}", f"{ms:.2f}"]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small pool: a smoke test")
    parser.add_argument("--pool", type=int, default=512, help="images per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, help="write the table into this page")
    args = parser.parse_args(argv)
    if args.quick:
        args.pool = 48
    start = load_average()
    out = []
    for family, (images, masks, classes) in pools(args.pool, args.seed).items():
        header = [
            "fill",
            "abs log ratio",
            *[f"ratio, class {c}" for c in range(NUM_CLASSES)],
            "rank corr",
            "ms / image",
        ]
        out.append(
            f"### {family}: the hole's sharpness against its background's ({args.pool} "
            "images; the classes are the cue's blur levels)\n\n"
            + table(header, measure(images, masks, classes))
        )
    text = "\n\n".join(out)
    print(text)
    if args.markdown is not None:
        command = command_line("bench_fills.py", argv)
        write_section(args.markdown, "bench_fills", text, command, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
