"""The probe file: images, masks, labels and where each mask came from, in one `.npz`.

`saliency-callback annotate` writes it; `SaliencyCallback.from_probe_file` and
`saliency-callback explain` read it. The arrays (`numpy.load(path)` shows them):

- `images` `(N, H, W, C)`: the probe images exactly as given (after the optional resize);
- `masks` `(N, H, W)` bool: the object's pixels;
- `labels` `(N,)` int64, `-1` where unknown (absent when no label is known);
- `class_names` `(K,)` str (absent when unknown);
- `source` `(N,)` str: `"drawn"` (outlined by hand), `"corrected"` (a proposal edited by hand),
  `"proposed"` (an automatic proposal, left as it was) or `"empty"` (no mask);
- `checked` `(N,)` bool: whether someone looked at the probe (accepted, edited or skipped it);
- `skipped` `(N,)` bool: probes to leave out (`from_probe_file` drops them);
- `boxes` `(N, 4)` int32: the last box drawn, `(x0, y0, x1, y1)` with the end excluded, or
  `-1`s;
- `names` `(N,)` str: the image files' names;
- `format`: `"saliency_callback.data.probes/1"`, and `proposal_method` when proposals were made.

Files are written atomically (a temporary file in the same directory, then `os.replace`), so a
crash leaves the old file or the new one, never half of one. The autosave sidecar
(`autosave_path`) holds the same annotations without the images, with the images' SHA-256, so
it is only ever applied to the images it was made for.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FORMAT",
    "SOURCES",
    "ProbeFile",
    "ProbeFileError",
    "autosave_path",
    "is_probe_file",
    "read_autosave",
    "read_probe_file",
    "write_autosave",
    "write_probe_file",
]

FORMAT = "saliency_callback.data.probes/1"
SOURCES = ("drawn", "corrected", "proposed", "empty")
_REQUIRED = ("images", "masks", "source", "skipped")


class ProbeFileError(ValueError):
    """A probe file is missing, unreadable or inconsistent (the message says which part)."""


@dataclass
class ProbeFile:
    """The probes of a probe file, validated.

    Attributes:
        images: `(N, H, W, C)` images as given.
        masks: `(N, H, W)` bool masks.
        labels: `(N,)` int64 class ids (`-1`: unknown), or `None` when no label is known.
        class_names: The class names, or `None`.
        source: `(N,)` where each mask came from (one of `SOURCES`).
        checked: `(N,)` bool, whether the probe was looked at.
        skipped: `(N,)` bool, whether to leave the probe out.
        boxes: `(N, 4)` int32 boxes `(x0, y0, x1, y1)` (end excluded), `-1` for none.
        names: `(N,)` image names.
        proposal_method: How the proposals were made, or `""`.
    """

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    source: np.ndarray = field(default_factory=lambda: np.zeros(0, "<U9"))
    checked: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    skipped: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int32))
    names: list[str] = field(default_factory=list)
    proposal_method: str = ""

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        if self.images.ndim == 3:
            self.images = self.images[..., None]
        if self.images.ndim != 4 or self.images.dtype.kind not in "uif" or not len(self.images):
            raise ProbeFileError(
                "expected `images` of shape (N, H, W, C) with N >= 1 and numbers, received "
                f"shape {self.images.shape} of {self.images.dtype}"
            )
        n, h, w = self.images.shape[:3]
        self.masks = np.asarray(self.masks)
        if (
            self.masks.shape != (n, h, w)
            or self.masks.dtype.kind not in "biuf"
            or not np.isin(self.masks, (0, 1)).all()
        ):
            raise ProbeFileError(
                f"expected `masks` of shape {(n, h, w)} holding 0/1 or bool, received shape "
                f"{self.masks.shape} of {self.masks.dtype}"
            )
        self.masks = self.masks.astype(bool)
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.shape != (n,) or labels.dtype.kind not in "iu":
                raise ProbeFileError(
                    f"expected `labels` of shape ({n},) with class ids (-1: unknown), received "
                    f"shape {labels.shape} of {labels.dtype}"
                )
            self.labels = labels.astype(np.int64)
            if (self.labels < -1).any():
                raise ProbeFileError(f"expected `labels` >= -1, received {self.labels.min()}")
        if self.class_names is not None:
            self.class_names = [str(c) for c in self.class_names]
            if self.labels is not None and self.labels.max() >= len(self.class_names):
                raise ProbeFileError(
                    f"`labels` go up to {self.labels.max()} but there are "
                    f"{len(self.class_names)} `class_names`"
                )
        self.source = self._per_probe("source", self.source, "empty").astype("<U9")
        bad = sorted(set(self.source.tolist()) - set(SOURCES))
        if bad:
            raise ProbeFileError(f"expected `source` values in {SOURCES}, received {bad}")
        self.checked = self._per_probe("checked", self.checked, False).astype(bool)
        self.skipped = self._per_probe("skipped", self.skipped, False).astype(bool)
        boxes = np.asarray(self.boxes)
        if boxes.size == 0:
            boxes = np.full((n, 4), -1, np.int32)
        if boxes.shape != (n, 4):
            raise ProbeFileError(f"expected `boxes` of shape ({n}, 4), received {boxes.shape}")
        self.boxes = boxes.astype(np.int32)
        names = [str(x) for x in self.names] or [f"probe_{i:02d}" for i in range(n)]
        if len(names) != n:
            raise ProbeFileError(f"expected {n} `names`, received {len(names)}")
        self.names = names

    def _per_probe(self, name: str, value: Any, default: Any) -> np.ndarray:
        arr = np.asarray(value)
        n = len(self.images)
        if arr.size == 0:
            return np.full(n, default)
        if arr.shape != (n,):
            raise ProbeFileError(f"expected `{name}` of shape ({n},), received {arr.shape}")
        return arr

    def __len__(self) -> int:
        return len(self.images)

    def uint8_images(self) -> np.ndarray:
        """The images as uint8 `(N, H, W, C)`, e.g. for display.

        uint8 stays as it is; floats in `[0, 1]` are scaled by 255, integers in `[0, 255]` kept;
        other values are min-max scaled to `[0, 255]`.
        """
        x = self.images
        if x.dtype == np.uint8:
            return x
        values = x.astype(np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if x.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
            lo, hi = 0.0, 1.0
        elif lo >= 0 and hi <= 255:
            lo, hi = 0.0, 255.0
        values = np.nan_to_num((values - lo) / max(hi - lo, 1e-12) * 255.0)
        return np.clip(np.round(values), 0, 255).astype(np.uint8)

    def fingerprint(self) -> str:
        """SHA-256 of the images (shape, dtype and bytes): what an autosave belongs to."""
        digest = hashlib.sha256(f"{self.images.shape}{self.images.dtype.str}".encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        return digest.hexdigest()

    def counts(self) -> dict[str, int]:
        """How many probes are `drawn`, `corrected`, `proposed`, `empty` (not skipped), and
        `skipped` and `unchecked`."""
        kept = ~self.skipped
        out = {s: int(((self.source == s) & kept).sum()) for s in SOURCES}
        out["skipped"] = int(self.skipped.sum())
        out["unchecked"] = int((~self.checked & kept).sum())
        return out

    def describe(self, path: str = "") -> str:
        """One line: where the masks came from, e.g. for the callback's summary description.

        Example: `"probes.npz: 14 probes; masks: 9 drawn, 3 corrected, 2 proposed (1 unchecked);
        2 skipped"`.
        """
        c = self.counts()
        kept = len(self) - c["skipped"]
        parts = [f"{c[s]} {s}" for s in ("drawn", "corrected", "proposed") if c[s]]
        if c["empty"]:
            parts.append(f"{c['empty']} without a mask")
        text = f"{kept} probe{'s' if kept != 1 else ''}; masks: " + (", ".join(parts) or "none")
        if c["unchecked"]:
            text += f" ({c['unchecked']} unchecked)"
        if c["skipped"]:
            text += f"; {c['skipped']} skipped"
        if self.proposal_method and (c["proposed"] or c["corrected"]):
            text += f"; proposals: {self.proposal_method}"
        return f"{os.path.basename(path)}: {text}" if path else text

    def for_callback(self) -> dict[str, Any]:
        """`images`, `labels`, `masks` and `class_names` of the probes not skipped.

        Labels are `None` when no kept probe has one, masks `None` when every kept mask is
        empty (a probe without a mask among others gets NaN mask metrics, left out of means).

        Raises:
            ProbeFileError: If every probe is skipped, or only some kept probes have a label.
        """
        kept = ~self.skipped
        if not kept.any():
            raise ProbeFileError("every probe is skipped; expected at least one to keep")
        labels = None
        if self.labels is not None:
            kept_labels = self.labels[kept]
            missing = np.flatnonzero(kept & (self.labels < 0))
            if len(missing) and len(missing) < int(kept.sum()):
                raise ProbeFileError(
                    f"probes {missing.tolist()} have no label while others do; set their "
                    "labels (or skip them) with `saliency-callback annotate`"
                )
            labels = None if len(missing) else kept_labels
        masks = self.masks[kept]
        return {
            "images": self.images[kept],
            "labels": labels,
            "masks": masks if masks.any() else None,
            "class_names": self.class_names,
        }


def autosave_path(path: str | os.PathLike[str]) -> str:
    """The autosave sidecar of a probe file: `probes.npz` -> `probes.autosave.npz`."""
    text = os.fspath(path)
    stem = text[:-4] if text.endswith(".npz") else text
    return stem + ".autosave.npz"


def _annotations(pf: ProbeFile) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {
        "format": np.asarray(FORMAT),
        "masks": pf.masks,
        "source": pf.source.astype("<U9"),
        "checked": pf.checked,
        "skipped": pf.skipped,
        "boxes": pf.boxes,
        "names": np.asarray(pf.names, dtype=str),
    }
    if pf.labels is not None and (pf.labels >= 0).any():
        arrays["labels"] = pf.labels
    if pf.class_names is not None:
        arrays["class_names"] = np.asarray(pf.class_names, dtype=str)
    if pf.proposal_method:
        arrays["proposal_method"] = np.asarray(pf.proposal_method)
    return arrays


def _write_atomically(path: str, arrays: dict[str, np.ndarray], compress: bool) -> None:
    """Writes `arrays` as an `.npz` at `path` through a temporary file and `os.replace`."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            save: Any = np.savez_compressed if compress else np.savez
            save(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_probe_file(path: str | os.PathLike[str], pf: ProbeFile) -> None:
    """Writes a probe file atomically (compressed).

    Raises:
        OSError: If it cannot be written; an existing file at `path` is then left as it was.
    """
    arrays = _annotations(pf)
    arrays["images"] = pf.images
    _write_atomically(os.fspath(path), arrays, compress=True)


def write_autosave(path: str | os.PathLike[str], pf: ProbeFile) -> None:
    """Writes the annotations of `pf` (not its images) to the sidecar at `path`, atomically."""
    arrays = _annotations(pf)
    arrays["images_sha256"] = np.asarray(pf.fingerprint())
    _write_atomically(os.fspath(path), arrays, compress=False)


def _load(path: str, what: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise ProbeFileError(f"{what} not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ProbeFileError(f"cannot read {what} {path}: {reason}") from None


def _from_arrays(data: dict[str, np.ndarray], images: np.ndarray) -> ProbeFile:
    class_names = data.get("class_names")
    method = data.get("proposal_method")
    return ProbeFile(
        images=images,
        masks=data["masks"],
        labels=data.get("labels"),
        class_names=None if class_names is None else [str(c) for c in class_names],
        source=data["source"],
        checked=data.get("checked", np.zeros(0, bool)),
        skipped=data["skipped"],
        boxes=data.get("boxes", np.zeros((0, 4), np.int32)),
        names=[str(x) for x in data.get("names", [])],
        proposal_method="" if method is None else str(method),
    )


def is_probe_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is an `.npz` holding at least the probe file's `images` and `masks`."""
    text = os.fspath(path)
    if not text.endswith(".npz") or not os.path.isfile(text):
        return False
    try:
        with np.load(text, allow_pickle=False) as data:
            return {"images", "masks"} <= set(data.files)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return False


def read_probe_file(path: str | os.PathLike[str]) -> ProbeFile:
    """Reads and validates a probe file.

    Raises:
        ProbeFileError: For a missing or unreadable file, missing arrays or inconsistent shapes,
            naming the file and the array.
    """
    text = os.fspath(path)
    data = _load(text, "probe file")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ProbeFileError(
            f"not a probe file: {text} has no {', '.join(missing)} (it holds "
            f"{', '.join(sorted(data)) or 'nothing'}); expected a file written by "
            "`saliency-callback annotate`"
        )
    try:
        return _from_arrays(data, data["images"])
    except ProbeFileError as err:
        raise ProbeFileError(f"bad probe file {text}: {err}") from None


def read_autosave(path: str | os.PathLike[str], images: np.ndarray) -> ProbeFile | None:
    """The annotations autosaved at `path` for these `images`, or `None` if there is none.

    Raises:
        ProbeFileError: If the sidecar exists but belongs to other images, or is unreadable.
    """
    text = os.fspath(path)
    if not os.path.exists(text):
        return None
    data = _load(text, "autosave")
    try:
        pf = _from_arrays(data, images)
    except (ProbeFileError, KeyError) as err:
        raise ProbeFileError(f"bad autosave {text}: {err}") from None
    if str(data.get("images_sha256", "")) != pf.fingerprint():
        raise ProbeFileError(
            f"the autosave {text} holds unsaved work for other images; move it away, or pass "
            "--force to discard it"
        )
    return pf
