"""What `annotate` starts from: image files or a probe file, labels, and automatic proposals.

`start_probes` turns the command line's inputs into a `ProbeFile`: image files (or the images of
a directory) are decoded, resized to `--size` and stacked; an existing probe file is read as it
is. Labels come from `--labels` (a CSV file, optionally `FILE:COLUMN`), and the masks from
`saliency_callback.shortcuts.proposals.propose_masks` when that module is installed (else they start
empty). Every problem is a `LoadError` with a one-line message.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from saliency_callback.data.loading import LoadError, error_reason, load_pixels, open_images
from saliency_callback.data.probe_file import (
    ProbeFile,
    ProbeFileError,
    is_probe_file,
    read_probe_file,
)

__all__ = ["IMAGE_EXTENSIONS", "Start", "expand_paths", "read_labels", "start_probes"]

IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip
_FILE_COLUMNS = ("file", "filename", "image", "path", "name")
_LABEL_COLUMNS = ("label", "labels", "class", "y", "target")


@dataclass
class Start:
    """The probes to annotate, where they came from, and notes for the user."""

    probes: ProbeFile
    edit_path: str | None  # the probe file being edited, if the input was one
    fallback: list[bool]  # per probe: the proposal is a fallback (the method found nothing)
    notes: list[str]


def expand_paths(paths: Sequence[str]) -> list[str]:
    """Image files from files and directories (a directory's images, sorted by name).

    Raises:
        LoadError: For a missing path or a directory without images.
    """
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(path, name)
                for name in os.listdir(path)
                if name.lower().endswith(IMAGE_EXTENSIONS)
                and os.path.isfile(os.path.join(path, name))
            )
            if not found:
                raise LoadError(
                    f"no images in directory {path} (expected {', '.join(IMAGE_EXTENSIONS[:4])}, "
                    "...)"
                )
            files.extend(found)
        elif not os.path.exists(path):
            raise LoadError(f"image file not found: {path}")
        else:
            files.append(path)
    return files


def _channels(paths: Sequence[str]) -> int:
    """1 when every image is grayscale, 4 when every one has alpha, else 3 (RGB)."""
    from PIL import Image

    modes = set()
    for path in paths:
        with Image.open(path) as img:
            modes.add(img.mode)
    gray = {"1", "L", "I", "F", "I;16", "I;16B", "I;16L"}
    if modes <= gray:
        return 1
    if modes <= {"RGBA", "LA", "PA"}:
        return 4
    return 3


def _load_images(
    paths: Sequence[str], size: tuple[int, int] | None
) -> tuple[np.ndarray, list[str], int]:
    """Decoded images `(N, H, W, C)` uint8, their names, and how many were resized."""
    files = open_images(paths)
    if size is None:
        sizes = {(f.height, f.width) for f in files}
        if len(sizes) > 1:
            by_size: dict[tuple[int, int], str] = {}
            for f in files:
                by_size.setdefault((f.height, f.width), os.path.basename(f.path))
            shown = ", ".join(f"{n} is {h}x{w}" for (h, w), n in list(by_size.items())[:3])
            raise LoadError(
                f"the images have {len(sizes)} different sizes ({shown}); pass --size HxW to "
                "resize them all to the model's input size",
                usage=True,
            )
    channels = _channels(paths)
    pixels, resized = [], 0
    for f in files:
        px, _, was_resized, _ = load_pixels(f, size, channels)
        pixels.append(px)
        resized += was_resized
    names = [os.path.basename(f.path) for f in files]
    return np.stack(pixels), names, resized


def _shorten(items: Sequence[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_labels(spec: str, names: Sequence[str], class_names: Sequence[str] | None) -> np.ndarray:
    """Reads `--labels FILE[:COLUMN]`: one class (index or name) per image.

    The CSV may have a header. The labels are the column named COLUMN, else one named
    `label`/`class`/`y`/`target`, else the only (or the last) column. A column named
    `file`/`filename`/`image`/`path`/`name` (or the first of two columns without a header)
    matches rows to images by file name; otherwise rows are in the images' order. Class names
    are turned into indices with `--class-names`. An empty cell is an unknown label (-1).

    Raises:
        LoadError: For an unreadable file, a missing column or image, or an unknown class.
    """
    path, column = spec, None
    if not os.path.exists(path) and ":" in spec:
        path, column = spec.rsplit(":", 1)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LoadError(f"cannot read --labels {path}: {error_reason(err)}") from None
    if not rows:
        raise LoadError(f"--labels {path} is empty")
    first = [c.strip().lower() for c in rows[0]]
    has_header = column is not None or any(c in _FILE_COLUMNS + _LABEL_COLUMNS for c in first)
    header, body = (first, rows[1:]) if has_header else ([], rows)
    width = len(rows[0])
    if column is not None:
        if column.lower() not in header:
            raise LoadError(
                f"--labels {path}: no column {column!r} (columns: {', '.join(rows[0])})",
                usage=True,
            )
        label_col = header.index(column.lower())
    else:
        label_col = next((header.index(c) for c in _LABEL_COLUMNS if c in header), width - 1)
    file_col = next((header.index(c) for c in _FILE_COLUMNS if c in header), None)
    if not header and width == 2:
        file_col = 0
    cells: list[str]
    if file_col is not None and file_col != label_col:
        by_name = {}
        for r in body:
            key = os.path.basename(r[file_col].strip()) if file_col < len(r) else ""
            by_name[key] = r[label_col].strip() if label_col < len(r) else ""
            by_name.setdefault(os.path.splitext(key)[0], by_name[key])
        missing = [n for n in names if n not in by_name and os.path.splitext(n)[0] not in by_name]
        if missing:
            raise LoadError(
                f"--labels {path} has no row for {len(missing)} image(s): "
                f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}"
            )
        cells = [by_name.get(n, by_name.get(os.path.splitext(n)[0], "")) for n in names]
    else:
        cells = [r[label_col].strip() if label_col < len(r) else "" for r in body]
        if len(cells) != len(names):
            raise LoadError(
                f"--labels {path} has {len(cells)} labels for {len(names)} images (rows follow "
                "the images' order; add a 'file' column to match them by name)"
            )
    labels = np.full(len(names), -1, np.int64)
    for i, cell in enumerate(cells):
        if not cell:
            continue
        if _is_int(cell) and int(cell) >= 0:
            labels[i] = int(cell)
        elif class_names is not None and cell in class_names:
            labels[i] = list(class_names).index(cell)
        elif class_names is None:
            raise LoadError(
                f"--labels {path}: label {cell!r} of {names[i]} is a name; pass --class-names "
                "in the model's class order to turn names into class indices",
                usage=True,
            )
        else:
            raise LoadError(
                f"--labels {path}: label {cell!r} of {names[i]} is not a class index or one of "
                f"--class-names ({_shorten(class_names)})"
            )
    if class_names is not None and labels.max() >= len(class_names):
        raise LoadError(
            f"--labels {path}: label {labels.max()} but --class-names has {len(class_names)} "
            "classes"
        )
    return labels


Proposer = Callable[[np.ndarray], object]


def _proposer() -> Proposer | None:
    """`saliency_callback.shortcuts.proposals.propose_masks`, or `None` when it is not installed."""
    try:
        from saliency_callback.shortcuts.proposals import propose_masks
    except ImportError:
        return None
    return propose_masks  # type: ignore[no-any-return]


def _propose(
    images: np.ndarray, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, list[bool], str]:
    """Proposed masks, boxes, fallback flags and method; empty masks without proposals."""
    n, h, w = images.shape[:3]
    propose = _proposer()
    if propose is None:
        notes.append("no automatic proposals in this install: the masks start empty")
        return np.zeros((n, h, w), bool), np.full((n, 4), -1, np.int32), [False] * n, ""
    try:
        proposed: Any = propose(images)
        masks = np.asarray(proposed.masks).astype(bool)
        boxes = np.asarray(proposed.boxes).astype(np.int32)
        fallback = [bool(f) for f in np.asarray(proposed.fallback)]
        method = str(proposed.method)
    except Exception as err:  # a proposal failing must not stop the user drawing by hand
        notes.append(f"the automatic proposals failed ({error_reason(err)}): masks start empty")
        return np.zeros((n, h, w), bool), np.full((n, 4), -1, np.int32), [False] * n, ""
    if masks.shape != (n, h, w) or boxes.shape != (n, 4) or len(fallback) != n:
        notes.append("the automatic proposals have the wrong shape: masks start empty")
        return np.zeros((n, h, w), bool), np.full((n, 4), -1, np.int32), [False] * n, ""
    if any(fallback):  # a stand-in box where the method found nothing is no proposal
        gone = np.asarray(fallback)
        masks[gone] = False
        boxes[gone] = -1
        notes.append(
            f"{int(gone.sum())} probe(s) have no plausible proposal ({method} found no object): "
            "their masks start empty"
        )
    return masks, boxes, fallback, method


def start_probes(
    inputs: Sequence[str],
    size: tuple[int, int] | None,
    labels: str | None,
    class_names: Sequence[str] | None,
) -> Start:
    """The probes to annotate: from one probe file, or from image files and directories.

    Raises:
        LoadError: For unreadable, non-image or mixed-size inputs, or bad labels.
    """
    notes: list[str] = []
    probe_inputs = [p for p in inputs if p.endswith(".npz")]
    if probe_inputs:
        if len(inputs) != 1:
            raise LoadError(
                "expected image files and directories, or one probe file to edit; received "
                f"{len(probe_inputs)} .npz file(s) among {len(inputs)} inputs",
                usage=True,
            )
        path = probe_inputs[0]
        if not os.path.exists(path):
            raise LoadError(f"probe file not found: {path}")
        if not is_probe_file(path):
            raise LoadError(f"not a probe file (no images and masks arrays): {path}")
        try:
            pf = read_probe_file(path)
        except ProbeFileError as err:
            raise LoadError(str(err)) from None
        if size is not None and pf.images.shape[1:3] != tuple(size):
            raise LoadError(
                f"--size {size[0]}x{size[1]} but the probe file's images are "
                f"{pf.images.shape[1]}x{pf.images.shape[2]}; a probe file is edited at its size",
                usage=True,
            )
        if class_names is not None:
            pf.class_names = list(class_names)
        if labels is not None:
            pf.labels = read_labels(labels, pf.names, pf.class_names)
        try:
            pf.__post_init__()
        except ProbeFileError as err:
            raise LoadError(f"{path} with the given options: {err}") from None
        return Start(pf, path, [False] * len(pf), notes)
    files = expand_paths(inputs)
    images, names, resized = _load_images(files, size)
    if resized and size is not None:
        notes.append(f"resized {resized} of {len(files)} images to {size[0]}x{size[1]}")
    label_arr = None if labels is None else read_labels(labels, names, class_names)
    masks, boxes, fallback, method = _propose(images, notes)
    source = np.where(masks.any(axis=(1, 2)), "proposed", "empty")
    pf = ProbeFile(
        images=images,
        masks=masks,
        labels=label_arr,
        class_names=None if class_names is None else list(class_names),
        source=source,
        boxes=boxes,
        names=names,
        proposal_method=method,
    )
    return Start(pf, None, fallback, notes)
