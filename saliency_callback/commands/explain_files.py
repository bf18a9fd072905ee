"""The files `explain` writes: per image a map, an overlay, a panel and arrays, and a summary.

`ExplainJob` explains batches of decoded images (`batches` groups them) and writes each
image's `NAME.map.png`, `NAME.overlay.png`, `NAME.panel.png` and `NAME.npz`, returning one
`SummaryRow` per image; `write_summary` writes the rows as `summary.csv`. `staged_directory`
makes it all or nothing: the files are written to a staging directory and moved into the
output directory only when everything succeeded. Problems are `ExplainError`s, whose messages
the command line prints as its one-line errors.

TensorFlow and Pillow are imported when first needed, not with this module.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from saliency_callback.data.loading import ImageFile, error_reason

__all__ = [
    "ExplainError",
    "ExplainJob",
    "SummaryRow",
    "batches",
    "staged_directory",
    "write_summary",
]


class ExplainError(ValueError):
    """The output directory cannot be written, or the model fails on the images."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _nearest_existing_dir(path: str) -> str:
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return probe


@contextmanager
def staged_directory(out_dir: str) -> Iterator[str]:
    """Yields an empty staging directory whose files are moved into `out_dir` on success.

    The staging directory is created next to `out_dir` (same file system, so the moves are
    renames). When the block raises (or is interrupted), the staging directory is removed and
    `out_dir` is left as it was. Existing files of `out_dir` with other names are kept; files
    of the same name are replaced.

    Args:
        out_dir: The output directory; created (with its parents) on success if missing.

    Yields:
        The staging directory's path.

    Raises:
        ExplainError: If `out_dir` is a file or cannot be written.
    """
    target = os.path.abspath(out_dir)
    if os.path.exists(target) and not os.path.isdir(target):
        raise ExplainError(f"--out {out_dir!r} is a file, expected a directory")
    base = target if os.path.isdir(target) else _nearest_existing_dir(os.path.dirname(target))
    try:
        stage = tempfile.mkdtemp(prefix=".saliency-callback-", dir=base)
    except OSError as err:
        raise ExplainError(f"cannot write to {out_dir!r}: {error_reason(err)}") from None
    try:
        yield stage
        if not os.path.isdir(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.dirname(stage) == os.path.dirname(target):
                os.chmod(stage, 0o777 & ~_umask())  # mkdtemp made it private
                os.rename(stage, target)
                return
            os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(stage)):
            os.replace(os.path.join(stage, name), os.path.join(target, name))
    except OSError as err:
        raise ExplainError(f"cannot write to {out_dir!r}: {error_reason(err)}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _format_value(value: float) -> str:
    """A predicted value (regression) as shown: 4 significant digits."""
    return f"{value:.4g}"


@dataclass
class SummaryRow:
    """One image's line of `summary.csv` and of the table printed on stdout.

    Attributes:
        file: The image's file name.
        predicted: The predicted class (its name when known) or value.
        confidence: The predicted class's probability (`"0.973"`), `"-"` for regression.
        target: The explained class (its name when known).
        peak_x: Column of the smoothed map's peak, in the image's own pixels.
        peak_y: Row of the smoothed map's peak, in the image's own pixels.
    """

    file: str
    predicted: str
    confidence: str
    target: str
    peak_x: int
    peak_y: int


def _predictions(
    outputs: np.ndarray, head: Any, names: list[str] | None
) -> tuple[list[Any], list[str], list[float]]:
    """Predicted class ids (or values), their display text and confidence (NaN: regression)."""
    n = len(outputs)
    if head.num_classes is None:  # one linear unit: regression
        values = [float(v) for v in outputs[:, 0]]
        return values, [_format_value(v) for v in values], [math.nan] * n
    if outputs.shape[1] == 1:  # binary sigmoid
        p = outputs[:, 0]
        ids = (p > 0.5).astype(int)
        conf = np.where(ids == 1, p, 1.0 - p)
    else:
        ids = outputs.argmax(axis=1)
        conf = outputs[np.arange(n), ids]
    text = [_class_name(int(i), names) for i in ids]
    return [int(i) for i in ids], text, [float(c) for c in conf]


def _class_name(index: int, names: list[str] | None) -> str:
    """The class's name from `names` when there is one, else its index."""
    if names is not None and 0 <= index < len(names):
        return names[index]
    return str(index)


def _save_png(path: str, array: np.ndarray) -> None:
    """Writes a uint8 `(H, W)` or `(H, W, C)` array as a PNG file."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG")


def batches(
    files: list[ImageFile], size: tuple[int, int] | None, batch_size: int
) -> Iterator[list[ImageFile]]:
    """Batches of files that share one input size (all when `size` is fixed).

    Args:
        files: The image files.
        size: The size every image is resized to, or `None` when each keeps its own.
        batch_size: The most files in a batch.

    Yields:
        Lists of at most `batch_size` files; with `size=None`, files of one size each.
    """
    if size is not None:
        for start in range(0, len(files), batch_size):
            yield files[start : start + batch_size]
        return
    by_shape: dict[tuple[int, int], list[ImageFile]] = {}
    for item in files:
        by_shape.setdefault((item.height, item.width), []).append(item)
    for members in by_shape.values():
        for start in range(0, len(members), batch_size):
            yield members[start : start + batch_size]


class ExplainJob:
    """Explains batches of decoded images of one shape and writes their files.

    Args:
        explainer: The `saliency_callback.maps.engine.Explainer` to call.
        renderer: The `saliency_callback.output.render.Renderer` that draws the panels.
        class_names: Names of the classes, or `None` to show class indices.
        method_name: The method's name, for the captions and the `.npz` files.
        scale: Pixel values (0..255) are multiplied by it...
        offset: ...and then it is added.
        sigma: Gaussian smoothing of the overlay, in pixels (0: none).
        colormap: The matplotlib colormap of the overlay.
        alpha: Maximum opacity of the heatmap in the overlay.
    """

    def __init__(
        self,
        explainer: Any,
        renderer: Any,
        class_names: list[str] | None,
        method_name: str,
        *,
        scale: float,
        offset: float,
        sigma: float,
        colormap: str,
        alpha: float,
    ) -> None:
        self.explainer = explainer
        self.renderer = renderer
        self.class_names = class_names
        self.method_name = method_name
        self.scale = scale
        self.offset = offset
        self.sigma = sigma
        self.colormap = colormap
        self.alpha = alpha

    def explain(
        self, stage: str, entries: list[tuple[ImageFile, np.ndarray, np.ndarray]]
    ) -> dict[int, SummaryRow]:
        """Explains the images and writes their four files into `stage`.

        Args:
            stage: The directory to write into.
            entries: `(image file, pixels uint8 (H, W, C), display uint8 RGB (H, W, 3))` per
                image, all of one shape.

        Returns:
            Each image's summary row, by its `ImageFile.index`.

        Raises:
            ExplainError: If the model rejects the inputs or fails on them.
        """
        from saliency_callback.output.render import colorize, gaussian_smooth, overlay

        x = np.stack([px for _, px, _ in entries]).astype(np.float32) * np.float32(self.scale)
        x += np.float32(self.offset)
        display = np.stack([disp for _, _, disp in entries])
        try:
            result = self.explainer(x)
        except (ValueError, TypeError) as error:
            raise ExplainError(
                f"the model's input does not fit the images: {error_reason(error)}"
            ) from None
        except Exception as error:  # raised by the model itself on these inputs
            raise ExplainError(
                f"the model failed on the images ({type(error).__name__}): {error_reason(error)}"
            ) from None
        smooth = gaussian_smooth(result.maps, self.sigma)
        blended = overlay(display, smooth, colorize(smooth, self.colormap), self.alpha)
        pred_ids, pred_text, conf = _predictions(
            result.outputs, self.explainer.head, self.class_names
        )
        captions = []
        for i, (item, _, _) in enumerate(entries):
            text = f"{os.path.basename(item.path)} pred={pred_text[i]}"
            if not math.isnan(conf[i]):
                text += f" {conf[i]:.0%}"
            captions.append(f"{text} {self.method_name}")
        panels = self.renderer.panels(display, result.maps, captions)
        rows = {}
        for i, (item, _, _) in enumerate(entries):
            h, w = result.maps[i].shape
            peak_r, peak_c = np.unravel_index(int(np.argmax(smooth[i])), (h, w))
            img_r = min(item.height - 1, int((peak_r + 0.5) * item.height / h))
            img_c = min(item.width - 1, int((peak_c + 0.5) * item.width / w))
            base = os.path.join(stage, item.name)
            gray = np.round(np.clip(result.maps[i], 0.0, 1.0) * 255.0).astype(np.uint8)
            _save_png(base + ".map.png", gray)
            _save_png(base + ".overlay.png", blended[i])
            _save_png(base + ".panel.png", panels[i])
            target = int(result.targets[i])
            np.savez_compressed(
                base + ".npz",
                input=x[i],
                attributions=result.attributions[i],
                map=result.maps[i],
                smoothed=smooth[i],
                outputs=result.outputs[i],
                logits=result.logits[i],
                target=np.int32(target),
                predicted=np.asarray(pred_ids[i]),
                confidence=np.float32(conf[i]),
                peak=np.asarray([peak_r, peak_c], np.int32),
                peak_image=np.asarray([img_r, img_c], np.int32),
                image_size=np.asarray([item.height, item.width], np.int32),
                image_file=np.asarray(item.path),
                method=np.asarray(self.method_name),
                sigma=np.float32(self.sigma),
            )
            rows[item.index] = SummaryRow(
                os.path.basename(item.path),
                pred_text[i],
                "-" if math.isnan(conf[i]) else f"{conf[i]:.3f}",
                _class_name(target, self.class_names),
                img_c,
                img_r,
            )
        return rows


def write_summary(path: str, rows: list[SummaryRow]) -> None:
    """Writes the rows as a CSV file with a header line.

    Args:
        path: The file to write (`summary.csv`).
        rows: One row per image, in the order to write them.
    """
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "predicted", "confidence", "explained", "peak_x", "peak_y"])
        for r in rows:
            writer.writerow([r.file, r.predicted, r.confidence, r.target, r.peak_x, r.peak_y])
