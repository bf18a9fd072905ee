"""A lazy TensorBoard writer for one run directory (`log_dir/saliency`).

The event file is created on the first write, never before, so a callback whose `freq` never
fires leaves no empty event file behind (as Keras's own `TensorBoard` callback does). Writes
are flushed after every logged epoch and the file is closed at the end of training.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from typing import Any

import numpy as np

from saliency_callback.output.event_file import EventFile, encode_png


def check_log_dir(log_dir: str, caller: str = "SaliencyCallback") -> None:
    """Checks, without creating anything, that `log_dir` can hold event files.

    Remote paths (`gs://`, `s3://`, ...) are not checked.

    Raises:
        TypeError: If `log_dir` is not a string or path.
        ValueError: If `log_dir` is an existing file, or its nearest existing ancestor is not a
            writable directory.
    """
    if not isinstance(log_dir, (str, os.PathLike)):
        raise TypeError(
            f"`{caller}` expected `log_dir` to be a str or path, received {type(log_dir).__name__}"
        )
    path = os.fspath(log_dir)
    if "://" in path:
        return
    if not path:
        raise ValueError(f"`{caller}` expected a non-empty `log_dir`, received {log_dir!r}")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(
            f"`{caller}` expected `log_dir` to be a directory, received log_dir={path!r}, "
            "which is a file"
        )
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(
            f"`{caller}` cannot write to `log_dir`: received log_dir={path!r}, and "
            f"{probe!r} is not a writable directory"
        )


_DT_FLOAT = 1  # tensorflow.DataType.DT_FLOAT
_DT_STRING = 7  # tensorflow.DataType.DT_STRING


@functools.cache
def _scalar_metadata() -> Any:
    from tensorboard.plugins.scalar import metadata as scalar_metadata

    return scalar_metadata.create_summary_metadata(display_name=None, description=None)


class RunWriter:
    """Writes image and scalar summaries into `log_dir/run`, creating the file lazily.

    The events are those TensorFlow's `tf.summary.image`, `tf.summary.scalar` and
    `tf.summary.text` write (same tags, steps, plugin metadata and tensors; the PNG bytes
    differ, the pixels they decode to do not), written without TensorFlow
    (`saliency_callback.output.event_file`), so it runs on every Keras backend. Images are
    PNG-encoded with zlib level `png_compression`; level 1 encodes about 30% faster than the
    default for a few percent more bytes. Scalars of one call are written as one event.
    `encode` touches no file, so it may run on another thread than the writes.

    Args:
        log_dir: The TensorBoard log directory (shared with Keras's `TensorBoard` callback).
        run: The run's sub-directory name. Defaults to `"saliency"`.
        png_compression: zlib level 0-9 of the PNGs. Defaults to `1`.
    """

    def __init__(self, log_dir: str, run: str = "saliency", png_compression: int = 1) -> None:
        self.path = os.path.join(os.fspath(log_dir), run)
        self.png_compression = int(png_compression)
        self._writer: EventFile | None = None

    def reopen_if_lost(self) -> bool:
        """Starts a new event file if the run directory vanished under an open writer.

        A writer whose directory is deleted keeps writing into the unlinked file, losing
        everything silently; this detects it (for local paths) and returns `True`.
        """
        if self._writer is None or "://" in self.path or os.path.isdir(self.path):
            return False
        with contextlib.suppress(Exception):  # the file is gone anyway
            self._writer.close()
        self._forget()
        return True

    def _forget(self) -> None:
        self._writer = None

    def _get(self) -> EventFile:
        if self._writer is None:
            self._writer = EventFile(self.path)
        return self._writer

    def encode(self, data: np.ndarray) -> list[bytes]:
        """PNG-encodes uint8 images `(k, H, W, 3)`; thread-safe, no file I/O."""
        return encode_png(data, self.png_compression)

    def write_pngs(
        self,
        tag: str,
        pngs: list[bytes],
        size: tuple[int, int],
        step: int,
        description: str | None = None,
    ) -> None:
        """Writes encoded PNGs of `size=(height, width)` as one image summary: a string tensor
        `[width, height, png, ...]`, as `tf.summary.image` writes it."""
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.image import metadata as image_metadata

        height, width = size
        summary = summary_pb2.Summary()
        entry = summary.value.add(tag=tag)
        entry.metadata.CopyFrom(
            image_metadata.create_summary_metadata(display_name=None, description=description)
        )
        entry.tensor.dtype = _DT_STRING
        entry.tensor.tensor_shape.dim.add(size=len(pngs) + 2)
        entry.tensor.string_val.extend([str(width).encode(), str(height).encode(), *pngs])
        self._get().summary(summary, step)

    def images(self, tag: str, data: np.ndarray, step: int, description: str | None = None) -> None:
        """Writes uint8 images `(k, H, W, 3)` as one image summary with `k` samples."""
        self.write_pngs(tag, self.encode(data), data.shape[1:3], step, description)

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Writes several scalars at `step` as one event holding every value.

        A NaN or infinite value is left out, never written (the callback says why, see
        `saliency_callback.shortcuts.unmeasured`).
        """
        from tensorboard.compat.proto import summary_pb2

        values = {tag: v for tag, v in values.items() if math.isfinite(float(v))}
        if not values:
            return
        summary = summary_pb2.Summary()
        meta = _scalar_metadata()
        for tag, value in values.items():
            entry = summary.value.add(tag=tag)
            entry.metadata.CopyFrom(meta)
            entry.tensor.dtype = _DT_FLOAT
            entry.tensor.float_val.append(float(np.float32(value)))
        self._get().summary(summary, step)

    def text(self, tag: str, value: str, step: int) -> None:
        """Writes a Markdown text summary."""
        from tensorboard.plugins.text import summary_v2 as text_summary

        self._get().summary(text_summary.text_pb(tag, value), step)

    def restart(self, step: int, twice: bool = False) -> None:
        """Writes a `SessionLog.START` event at `step` and flushes: TensorBoard then discards
        the run's data at `step` and later written before it (as after a TensorFlow restart).

        TensorBoard's server takes a run's first START for its start, not a restart: pass
        `twice=True` when the run holds none yet.
        """
        import time

        from tensorboard.compat.proto import event_pb2

        writer = self._get()
        for _ in range(2 if twice else 1):
            writer.add(
                event_pb2.Event(
                    wall_time=time.time(),
                    step=step,
                    session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START),
                )
            )
        self.flush()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the file; a later write opens a new one."""
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._forget()
