"""Instrumentation for `bench_callback.py`: benchmark-side wrappers that time or capture the
callback's own calls (the package is not modified)."""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from saliency_callback import SaliencyCallback

# -- instrumentation (benchmark-side wrappers; the package is not modified) --------------------


@contextlib.contextmanager
def patched(obj: Any, name: str, wrapper: Callable[..., Any]) -> Iterator[None]:
    """Shadows a bound method by an instance attribute (also on frozen dataclasses)."""
    vars(obj)[name] = wrapper
    try:
        yield
    finally:
        del vars(obj)[name]


@contextlib.contextmanager
def capture_images(cb: SaliencyCallback, store: dict[str, np.ndarray]) -> Iterator[None]:
    """Records the arrays the callback PNG-encodes (its writer's `encode`), named by the tag
    each is then written under (`write_pngs`, in the order they were encoded)."""
    encode, write_pngs = cb.writer.encode, cb.writer.write_pngs
    pending: collections.deque[np.ndarray] = collections.deque()

    def recording_encode(data: np.ndarray) -> list[bytes]:
        pending.append(np.array(data, copy=True))
        return encode(data)

    def recording_write(tag: str, pngs: list[bytes], size: tuple[int, int], *a: Any) -> None:
        data = pending.popleft()
        while data.shape[1:3] != tuple(size) or len(data) != len(pngs):  # one left unwritten
            data = pending.popleft()  # (over the size cap): not in the reference either
        store[tag] = data
        write_pngs(tag, pngs, size, *a)

    with (
        patched(cb.writer, "encode", recording_encode),
        patched(cb.writer, "write_pngs", recording_write),
    ):
        yield


@contextlib.contextmanager
def instrumented(cb: SaliencyCallback, times: dict[str, float]) -> Iterator[None]:
    """Adds the wall time of the callback's inner calls to `times` (piece -> ms)."""
    assert cb._explainer is not None

    def timer(piece: Callable[[tuple[Any, ...]], str], fn: Callable[..., Any]) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[piece(args)] += (time.perf_counter() - start) * 1e3

        return wrapper

    def write_piece(args: tuple[Any, ...]) -> str:
        return f"image summary writes: {args[0].split('/')[-1]}"

    with contextlib.ExitStack() as stack:
        stack.enter_context(
            patched(
                cb._explainer,
                "explain_prepared",
                timer(lambda a: "engine", cb._explainer.explain_prepared),
            )
        )
        stack.enter_context(
            patched(cb.renderer, "panels", timer(lambda a: "render: panels", cb.renderer.panels))
        )
        stack.enter_context(
            patched(cb.renderer, "grid", timer(lambda a: "render: grid", cb.renderer.grid))
        )
        stack.enter_context(
            patched(cb.writer, "encode", timer(lambda a: "PNG encoding", cb.writer.encode))
        )
        stack.enter_context(
            patched(cb.writer, "write_pngs", timer(write_piece, cb.writer.write_pngs))
        )
        stack.enter_context(
            patched(cb.writer, "scalars", timer(lambda a: "scalar summaries", cb.writer.scalars))
        )
        stack.enter_context(patched(cb.writer, "flush", timer(lambda a: "flush", cb.writer.flush)))
        yield
