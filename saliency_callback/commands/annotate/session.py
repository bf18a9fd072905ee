"""One annotation session: the probes being edited, their autosave, and the final save.

The page sends each change of a probe (`Session.update`); every change is written at once to
the autosave sidecar (`probes.autosave.npz`, without the images), so a closed tab or a killed
server loses nothing. `Session.save` writes the probe file atomically and removes the sidecar.
The session is shared by the server's threads, behind one lock.
"""

from __future__ import annotations

import base64
import os
import threading
from typing import Any

import numpy as np

from saliency_callback.data.probe_file import (
    SOURCES,
    ProbeFile,
    autosave_path,
    write_autosave,
    write_probe_file,
)

__all__ = ["Session", "UpdateError", "display_pixels"]


class UpdateError(ValueError):
    """A change sent by the page does not fit the probes (answered with HTTP 400)."""


def display_pixels(images: np.ndarray) -> np.ndarray:
    """The images as RGBA uint8 `(N, H, W, 4)` for the page (see `ProbeFile.uint8_images`).

    One channel is shown as gray; alpha is ignored (the page shows the colours).
    """
    n, h, w, c = images.shape
    out = np.full((n, h, w, 4), 255, np.uint8)
    out[..., :3] = images[..., :1] if c < 3 else images[..., :3]
    return out


class Session:
    """The probes being annotated, saved to `out`, autosaved next to it.

    Args:
        probes: The probes to start from.
        out: Where `save` writes the probe file.
        fallback: Per probe, whether its proposal is a fallback (shown on the page).
    """

    def __init__(self, probes: ProbeFile, out: str, fallback: list[bool] | None = None) -> None:
        self.probes = probes
        self.out = out
        self.autosave = autosave_path(out)
        self.fallback = fallback or [False] * len(probes)
        self.lock = threading.Lock()
        self.edits = 0  # changes since the last save
        self.saved = threading.Event()  # set by the first save

    # -- what the page reads --------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """Everything about the probes except pixels and masks, as JSON-ready values."""
        pf = self.probes
        with self.lock:
            labels = None if pf.labels is None else pf.labels.tolist()
            return {
                "n": len(pf),
                "height": int(pf.images.shape[1]),
                "width": int(pf.images.shape[2]),
                "channels": int(pf.images.shape[3]),
                "names": pf.names,
                "labels": labels,
                "class_names": pf.class_names,
                "source": pf.source.tolist(),
                "checked": pf.checked.tolist(),
                "skipped": pf.skipped.tolist(),
                "boxes": pf.boxes.tolist(),
                "fallback": self.fallback,
                "proposal_method": pf.proposal_method,
                "out": os.path.basename(self.out),
                "autosave": os.path.basename(self.autosave),
            }

    def image_bytes(self) -> bytes:
        """Every probe's RGBA pixels, probe after probe, row after row."""
        return display_pixels(self.probes.uint8_images()).tobytes()

    def mask_bytes(self) -> bytes:
        """Every probe's mask, one byte (0 or 1) per pixel."""
        with self.lock:
            return self.probes.masks.astype(np.uint8).tobytes()

    # -- what the page writes -------------------------------------------------------------

    def update(self, index: Any, change: dict[str, Any]) -> None:
        """Applies one probe's change and autosaves.

        Args:
            index: The probe.
            change: Any of `mask` (base64 of one byte per pixel), `label` (int, -1: unknown),
                `source`, `checked`, `skipped`, `box` (`[x0, y0, x1, y1]` or `null`).

        Raises:
            UpdateError: For an unknown probe or field, or a value that does not fit.
        """
        pf = self.probes
        n, h, w = pf.masks.shape
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise UpdateError(f"expected a probe index in [0, {n}), received {index!r}")
        unknown = set(change) - {"mask", "label", "source", "checked", "skipped", "box"}
        if unknown:
            raise UpdateError(f"unknown fields {sorted(unknown)}")
        mask = None
        if "mask" in change:
            try:
                raw = base64.b64decode(change["mask"], validate=True)
            except (ValueError, TypeError):
                raise UpdateError("expected `mask` in base64") from None
            if len(raw) != h * w:
                raise UpdateError(f"expected a mask of {h * w} bytes, received {len(raw)}")
            mask = np.frombuffer(raw, np.uint8).reshape(h, w) != 0
        label = change.get("label")
        if "label" in change and (
            isinstance(label, bool) or not isinstance(label, int) or label < -1
        ):
            raise UpdateError(f"expected `label` to be a class index or -1, received {label!r}")
        if pf.class_names is not None and isinstance(label, int) and label >= len(pf.class_names):
            raise UpdateError(f"expected `label` < {len(pf.class_names)}, received {label}")
        if "source" in change and change["source"] not in SOURCES:
            raise UpdateError(f"expected `source` in {SOURCES}, received {change['source']!r}")
        box = change.get("box")
        if box is not None and (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)
        ):
            raise UpdateError(f"expected `box` as [x0, y0, x1, y1] or null, received {box!r}")
        with self.lock:
            if mask is not None:
                pf.masks[index] = mask
            if "label" in change:
                if pf.labels is None:
                    pf.labels = np.full(n, -1, np.int64)
                pf.labels[index] = label
            if "source" in change:
                pf.source[index] = change["source"]
            for flag in ("checked", "skipped"):
                if flag in change:
                    getattr(pf, flag)[index] = bool(change[flag])
            if "box" in change:
                pf.boxes[index] = box if box is not None else [-1, -1, -1, -1]
            self.edits += 1
            write_autosave(self.autosave, pf)

    def save(self) -> str:
        """Writes the probe file atomically, removes the autosave, returns the summary line."""
        with self.lock:
            write_probe_file(self.out, self.probes)
            if os.path.exists(self.autosave):
                os.unlink(self.autosave)
            self.edits = 0
            self.saved.set()
            return self.probes.describe(self.out)
