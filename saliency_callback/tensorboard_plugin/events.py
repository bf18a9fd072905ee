"""Reads what `SaliencyCallback` wrote into one run directory, in full, with bounded memory.

TensorBoard keeps 10 samples per image tag unless started with `--samples_per_plugin`, and a
plugin cannot lift that through the data provider. This reader reads the run's event files
itself (read-only) and keeps, for each `saliency/...` tag:

- images: where each step's record lies (file, byte offset, length), the sample count and
  size, never the pixels: `read_pngs` re-reads one record when a picture is asked for;
- scalars and texts: the values (a few numbers per logged step);
- the summaries' descriptions.

Files are read incrementally (`refresh` parses only the bytes appended since the last call, so
a run that is still training costs nothing extra), an incomplete record at the end of a file is
read again once complete, and a restart (a second `SessionLog.START` at step `s`, as written by
`saliency_callback.training.resume`) discards the steps `>= s` read before it, as TensorBoard does.

Only the protocol buffers of `tensorboard.compat.proto` are used: no TensorFlow, no NumPy.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from saliency_callback.output.event_file import event_files, masked_crc32c

PREFIX = "saliency/"
T = TypeVar("T")
_HEADER = 12  # uint64 length + uint32 masked CRC of the length
_FOOTER = 4  # uint32 masked CRC of the data


@dataclass(frozen=True)
class ImageRef:
    """Where one step of an image tag lies: event file, record offset and length."""

    file: str
    offset: int
    length: int
    samples: int
    width: int
    height: int

    @property
    def version(self) -> str:
        """Changes whenever the step is rewritten (for HTTP caching)."""
        return f"{os.path.basename(self.file)}:{self.offset}"


@dataclass
class RunData:
    """The `saliency/...` summaries of one run, by tag then step."""

    images: dict[str, dict[int, ImageRef]] = field(default_factory=dict)
    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    texts: dict[str, dict[int, str]] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    def purge_from(self, step: int) -> None:
        """Forgets every value at `step` or later (a restart)."""
        for by_tag in (self.images, self.scalars, self.texts):
            for series in by_tag.values():
                for s in [s for s in series if s >= step]:
                    del series[s]  # type: ignore[attr-defined]

    @property
    def empty(self) -> bool:
        return not (self.images or self.scalars or self.texts)


def _event_pb2():  # type: ignore[no-untyped-def]
    from tensorboard.compat.proto import event_pb2

    return event_pb2


def _text_value(tensor: object) -> str:
    values = getattr(tensor, "string_val", [])
    return b"\n".join(values).decode("utf-8", "replace")


class RunReader:
    """The incrementally read `saliency/...` summaries of the event files in one directory.

    Thread-safe: `refresh` and `data` may be called from several request threads.

    Args:
        directory: The run directory (its `*tfevents*` files, not its sub-directories).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.data = RunData()
        self._positions: dict[str, int] = {}
        self._seen_start = False
        self._lock = threading.Lock()

    def files(self) -> list[str]:
        return event_files(self.directory)

    def refresh(self) -> RunData:
        """Reads what was appended to the run's event files since the last call."""
        with self._lock:
            self._refresh()
            return self.data

    def _refresh(self) -> None:
        for path in self.files():
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            if size > self._positions.get(path, 0):
                self._read_file(path)

    def read(self, fn: Callable[[RunData], T]) -> T:
        """`fn(data)` on the refreshed data, with no refresh running meanwhile (another request
        thread may be reading the same run)."""
        with self._lock:
            self._refresh()
            return fn(self.data)

    def _read_file(self, path: str) -> None:
        position = self._positions.get(path, 0)
        event_pb2 = _event_pb2()
        with open(path, "rb") as f:
            f.seek(position)
            while True:
                header = f.read(_HEADER)
                if len(header) < _HEADER:
                    break
                (length,) = struct.unpack("<Q", header[:8])
                if struct.unpack("<I", header[8:])[0] != masked_crc32c(header[:8]):
                    break  # a corrupt record: stop here, as TensorBoard's reader does
                body = f.read(length + _FOOTER)
                if len(body) < length + _FOOTER:
                    break  # still being written: read it again next time
                event = event_pb2.Event()
                try:
                    event.ParseFromString(body[:length])
                except Exception:  # a record that is no event: skip it
                    position += _HEADER + length + _FOOTER
                    continue
                self._add(event, path, position + _HEADER, length)
                position += _HEADER + length + _FOOTER
        self._positions[path] = position

    def _add(self, event: object, path: str, offset: int, length: int) -> None:
        step = int(event.step)  # type: ignore[attr-defined]
        if event.HasField("session_log"):  # type: ignore[attr-defined]
            if event.session_log.status == 1:  # type: ignore[attr-defined]  # START
                if self._seen_start:
                    self.data.purge_from(step)
                self._seen_start = True
            return
        if not event.HasField("summary"):  # type: ignore[attr-defined]
            return
        for value in event.summary.value:  # type: ignore[attr-defined]
            tag = value.tag
            if not tag.startswith(PREFIX):
                continue
            meta = value.metadata
            if meta.summary_description:
                self.data.descriptions[tag] = meta.summary_description
            plugin = meta.plugin_data.plugin_name or self._known_plugin(tag)
            if plugin == "scalars" or value.HasField("simple_value"):
                number = value.simple_value
                if value.HasField("tensor") and value.tensor.float_val:
                    number = value.tensor.float_val[0]
                elif value.HasField("tensor") and value.tensor.double_val:
                    number = value.tensor.double_val[0]
                self.data.scalars.setdefault(tag, {})[step] = float(number)
            elif plugin == "images":
                strings = value.tensor.string_val
                if len(strings) < 2:
                    continue
                try:
                    width, height = int(strings[0]), int(strings[1])
                except ValueError:
                    width = height = 0
                ref = ImageRef(path, offset, length, len(strings) - 2, width, height)
                self.data.images.setdefault(tag, {})[step] = ref
            elif plugin == "text":
                self.data.texts.setdefault(tag, {})[step] = _text_value(value.tensor)

    def _known_plugin(self, tag: str) -> str:
        """The plugin of a value written without metadata (after its first write)."""
        if tag in self.data.images:
            return "images"
        if tag in self.data.texts:
            return "text"
        if tag in self.data.scalars:
            return "scalars"
        return ""


def read_pngs(ref: ImageRef, tag: str) -> list[bytes]:
    """The PNGs (one per sample) of the image summary `tag` in the record at `ref`."""
    with open(ref.file, "rb") as f:
        f.seek(ref.offset)
        data = f.read(ref.length)
    event = _event_pb2().Event()
    event.ParseFromString(data)
    for value in event.summary.value:
        if value.tag == tag:
            return list(value.tensor.string_val[2:])
    raise KeyError(f"{tag!r} is not in the record at {ref.file}:{ref.offset}")
