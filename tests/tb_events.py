"""Reads event files back with TensorBoard's own reader (not with our writer's code)."""

from __future__ import annotations

import glob
import io
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator


@dataclass
class Run:
    """Everything one run directory holds, by tag."""

    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    images: dict[str, list[tuple[int, list[np.ndarray]]]] = field(default_factory=dict)
    texts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def tags(self) -> set[str]:
        return set(self.scalars) | set(self.images) | set(self.texts)


def event_files(run_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))


def runs(log_dir: str) -> set[str]:
    """Names of the run sub-directories that hold event files."""
    return {
        os.path.relpath(os.path.dirname(f), log_dir)
        for f in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True)
    }


def read_run(run_dir: str, served: bool = False) -> Run:
    """Reads a run; `served=True` uses the accumulator of the TensorBoard server (which, unlike
    the legacy one, discards tensor summaries orphaned by a restart, see `SessionLog.START`)."""
    guidance = {event_accumulator.TENSORS: 0, event_accumulator.IMAGES: 0}
    if served:
        acc = plugin_event_accumulator.EventAccumulator(run_dir, size_guidance=guidance)
    else:
        acc = event_accumulator.EventAccumulator(run_dir, size_guidance=guidance)
    acc.Reload()
    run = Run()
    for tag in acc.Tags()["tensors"]:
        meta = acc.SummaryMetadata(tag)
        plugin = meta.plugin_data.plugin_name
        run.descriptions[tag] = meta.summary_description
        events = acc.Tensors(tag)
        if plugin == "scalars":
            run.scalars[tag] = [(e.step, float(np.asarray(tensor_value(e)).item())) for e in events]
        elif plugin == "images":
            run.images[tag] = [
                (e.step, [decode_png(b) for b in tensor_value(e)[2:]]) for e in events
            ]
        elif plugin == "text":
            run.texts[tag] = [(e.step, tensor_value(e).item().decode()) for e in events]
    return run


def tensor_value(event) -> np.ndarray:
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(event.tensor_proto)


def decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
