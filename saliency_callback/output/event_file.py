"""TensorBoard event files written without TensorFlow.

An event file is a sequence of records, each a serialized `Event` protocol buffer framed by
its length and two masked CRC-32C checksums (TensorFlow's `TFRecord` format). The protocol
buffers come from the `tensorboard` package (`tensorboard.compat.proto`), the checksums from
`google-crc32c`'s C implementation (the pure-Python one in `tensorboard` takes about a second
per 100 kB of PNG), and PNGs are encoded with Pillow (or TensorFlow's encoder when TensorFlow
is loaded). So the callback needs no TensorFlow to write what TensorBoard and the Saliency tab
read: a JAX or PyTorch user installs none.

Local files are written with `open`; a remote path (`gs://`, `s3://`, ...) goes through
`tensorboard.compat.tf.io.gfile`, which is TensorFlow's when TensorFlow is installed.
"""

from __future__ import annotations

import io
import itertools
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

__all__ = ["EventFile", "encode_png", "event_files", "masked_crc32c", "pillow_png", "read_events"]

_uid = itertools.count()  # files opened in one second by one process get distinct names


def masked_crc32c(data: bytes) -> int:
    """The CRC-32C of `data`, masked as TensorFlow's record format masks it."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def encode_png(images: np.ndarray, compression: int) -> list[bytes]:
    """PNG-encodes uint8 images `(k, H, W, 3)` with zlib level `compression` (0-9).

    With TensorFlow already imported (the TensorFlow backend) its batched encoder is used: it
    takes about two thirds of Pillow's time on large panels (`scripts/bench_writer.py`);
    otherwise Pillow. Both decode to the same pixels.
    """
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "image"):
        return list(tf.image.encode_png(images, compression=compression).numpy())
    return pillow_png(images, compression)


def pillow_png(images: np.ndarray, compression: int) -> list[bytes]:
    """`encode_png` with Pillow, whether TensorFlow is there or not."""
    from PIL import Image

    out = []
    for image in np.asarray(images, dtype=np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=compression)
        out.append(buffer.getvalue())
    return out


def decode_pngs(pngs: list[bytes]) -> np.ndarray:
    """The images of `encode_png` back, uint8 `(k, H, W, 3)` (PNG is lossless: the same bits)."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in pngs])


def _open(path: str, mode: str) -> Any:
    if "://" in path:
        from tensorboard.compat import tf

        return tf.io.gfile.GFile(path, mode)
    return open(path, mode)


class EventFile:
    """One new event file in `run_dir`, named as TensorFlow names its own.

    It starts with the `file_version` event TensorBoard expects; `add` appends one `Event`
    record, `flush` makes everything added so far readable.
    """

    def __init__(self, run_dir: str) -> None:
        from tensorboard.compat.proto import event_pb2

        stamp, host, uid = int(time.time()), socket.gethostname(), next(_uid)
        name = f"events.out.tfevents.{stamp:010d}.{host}.{os.getpid()}.{uid}.v2"
        self.path = os.path.join(run_dir, name)
        if "://" in run_dir:
            from tensorboard.compat import tf

            tf.io.gfile.makedirs(run_dir)
        else:
            os.makedirs(run_dir, exist_ok=True)
        self._file: BinaryIO = _open(self.path, "wb")
        self.add(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def add(self, event: Any) -> None:
        """Appends one `Event` protocol buffer as one record (whole, or not at all if it fails
        before writing)."""
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        record = b"".join(
            (
                header,
                struct.pack("<I", masked_crc32c(header)),
                data,
                struct.pack("<I", masked_crc32c(data)),
            )
        )
        self._file.write(record)

    def summary(self, summary: Any, step: int) -> None:
        """Appends a `Summary` protocol buffer as an event at `step`."""
        from tensorboard.compat.proto import event_pb2

        self.add(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def event_files(run_dir: str) -> list[str]:
    """The event files of `run_dir` (local or remote), sorted by name, as TensorBoard reads them.

    A file is an event file when "tfevents" is in its name (TensorBoard's
    `io_wrapper.IsTensorFlowEventsFile`); a local directory's name is taken literally, even with
    glob characters in it, and only regular files count.
    """
    if "://" in run_dir:
        from tensorboard.compat import tf

        return sorted(tf.io.gfile.glob(os.path.join(run_dir, "*tfevents*")))
    import glob

    pattern = os.path.join(glob.escape(run_dir), "*tfevents*")
    return sorted(f for f in glob.glob(pattern) if os.path.isfile(f))


def read_events(path: str) -> Iterator[Any]:
    """The `Event` protocol buffers of one event file, in order.

    A record cut short (a writer killed mid-write) or failing its checksum ends the file, as
    TensorBoard's loader ends it; the checksums are checked in C (`google-crc32c`), not in
    TensorBoard's pure-Python fallback, which takes seconds per megabyte without TensorFlow.
    """
    from tensorboard.compat.proto import event_pb2

    with _open(path, "rb") as file:
        while True:
            header = file.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            if struct.unpack("<I", header[8:])[0] != masked_crc32c(header[:8]):
                return
            data = file.read(length)
            footer = file.read(4)
            if len(data) < length or len(footer) < 4:
                return
            if struct.unpack("<I", footer)[0] != masked_crc32c(data):
                return
            yield event_pb2.Event.FromString(data)
