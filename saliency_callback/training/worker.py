"""Rendering and writing a logged step, off the training thread.

At a logged epoch end the callback computes, on the training thread, what needs the model (the
gradients, the background tests' forward pass, the scalar values, the alarm) and hands the rest
to `StepWriter.write` (rendering the panels, the overview and the timeline, PNG encoding, the
summary writes and the flush), either inline or on one background thread (`Worker`):

- at most one logged step is pending: submitting waits for the previous one to finish, so a
  slow disk slows training down rather than losing steps or piling them up in memory;
- the steps are written one at a time, in order, with exactly the summaries of the inline path;
- an exception in the worker is kept and reported by the callback at its next hook (a warning,
  or raised with `strict=True`);
- the thread is started once and waits for work (starting a thread per step cost the training
  thread a GIL hand-over of ~5-10 ms); it ends at `close` (the callback's `on_train_end`). At
  interpreter exit a pending step is finished, not lost (an `atexit` handler waits for it);
  during `fit`, Ctrl-C (SIGINT) first waits for it.
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import signal
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saliency_callback.output.event_file import decode_pngs
from saliency_callback.output.render import Renderer, render_variant_panels
from saliency_callback.output.runs import PROBES_TAG
from saliency_callback.output.timeline import Timeline, fit_pixel_budget, overlay_tiles
from saliency_callback.output.writer import RunWriter

_NAME = "SaliencyCallback"
_SIGINT_WAIT_S = 30.0
_EXIT_WAIT_S = 60.0
_LIVE: weakref.WeakSet[Worker] = weakref.WeakSet()


@atexit.register
def _finish_at_exit() -> None:
    """Lets a pending step reach the disk before the interpreter ends the daemon threads."""
    for worker in list(_LIVE):
        worker.wait(_EXIT_WAIT_S)


BACKGROUND_DESCRIPTION = (
    "Background tests. Each panel: **original | only_fg | only_bg | mixed_rand**: the probe as "
    "given; the object on the probe set's mean colour; the object removed (its pixels resampled "
    "from the background); the object on another probe's background (a fixed, seeded pairing, "
    "another class where labels exist). Each tile's caption: the model's prediction and "
    "confidence on it."
)
TIMELINE_DESCRIPTION = (
    "History at a glance: one row per probe (in probe order), one column per logged epoch (up "
    "to 12, evenly spaced over the logged epochs so far, the latest last; the column header is "
    "the step). Each cell: the probe's overlay at that epoch."
)


@dataclass
class StepPayload:
    """What the training thread computed for one logged step; the worker writes it.

    `maps is None` marks an epoch whose outputs were not finite (scalars only).
    """

    step: int
    scalars: dict[str, float]
    maps: np.ndarray | None = None
    captions: Sequence[str] | None = None
    background_captions: list[list[str]] | None = None
    alarm_message: str | None = None


@dataclass
class StepWriter:
    """Renders and writes logged steps into one run (see the module docstring).

    Args:
        writer: The run's writer.
        renderer: The panels' rendering options.
        raw: The probe images as the user gave them (for display).
        description: Markdown description of the panels' summaries.
        overview: Whether to write `saliency/overview`.
        overview_pixels: Pixel budget of the overview grid (panels shrink to fit).
        max_step_bytes: Cap of the PNG bytes written per logged step: the last per-probe and
            background panels are left out of that step beyond it (with a warning).
        timeline: Whether to write `saliency/timeline`.
        background: The background tests' image stacks and display range, or `None`.
        background_description: The description of `saliency/background`.
        once: `(tag, image, description)` written with the first step only (e.g.
            `saliency/probe_boxes`, which never changes during a fit).
    """

    writer: RunWriter
    renderer: Renderer
    raw: np.ndarray
    description: str
    overview: bool = True
    overview_pixels: int = 2**21
    max_step_bytes: int = 8 * 2**20
    timeline: Timeline | None = None
    background: tuple[list[np.ndarray], tuple[float, float] | None] | None = None
    background_description: str = BACKGROUND_DESCRIPTION
    once: list[tuple[str, np.ndarray, str]] = field(default_factory=list)
    _warned_cap: bool = False

    def write(self, p: StepPayload) -> list[str]:
        """Writes one step; returns the warnings for the training thread to emit."""
        messages: list[str] = []
        if self.writer.reopen_if_lost():
            messages.append(
                f"the log directory {self.writer.path!r} disappeared during training; a new "
                "event file is started there (earlier steps are lost)."
            )
        if p.maps is None:
            self.writer.scalars(p.scalars, p.step)
            self.writer.flush()
            return messages
        r = self.renderer
        panels = r.panels(self.raw, p.maps, p.captions)
        images: list[tuple[str, np.ndarray, str]] = []  # tag, (k, H, W, 3), description
        if self.overview:
            fitted = fit_pixel_budget(panels, self.overview_pixels, r.pad)
            images.append(("saliency/overview", r.grid(fitted), self.description))
        images.append((PROBES_TAG, panels, self.description))
        if self.background is not None and p.background_captions is not None:
            stacks, value_range = self.background
            variant_panels = render_variant_panels(
                stacks,
                p.background_captions,
                min_tile=r.min_tile,
                max_tile=r.max_tile,
                value_range=value_range,
            )
            images.append(("saliency/background", variant_panels, self.background_description))
        images += self.once
        if self.timeline is not None:
            self.timeline.add(p.step, overlay_tiles(panels, p.captions is not None))
            images.append(("saliency/timeline", self.timeline.image(), TIMELINE_DESCRIPTION))
        encoded = [(tag, self.writer.encode(data), data, d) for tag, data, d in images]
        messages += self._cap(encoded, p.step)
        for tag, pngs, data, description in encoded:
            if pngs:
                self.writer.write_pngs(tag, pngs, data.shape[1:3], p.step, description)
        if p.alarm_message is not None:
            self.writer.text("saliency/alarm_message", p.alarm_message, p.step)
        self.writer.scalars(p.scalars, p.step)
        self.writer.flush()
        self.once = []
        return messages

    def resume_timeline(self, logged: list[tuple[int, list[bytes]]]) -> list[str]:
        """Rebuilds the timeline from the steps a resumed run already logged (`logged`: each
        step's `PROBES_TAG` PNGs, `RunHistory.logged_panels`), in order, as the
        interrupted run built it; steps whose panels were left out (`max_step_bytes`) are
        missing from it. A panel that cannot be read leaves the timeline to start anew (a
        warning), never the fit."""
        if self.timeline is None:
            return []
        try:
            for step, pngs in logged:
                self.timeline.add(step, overlay_tiles(decode_pngs(pngs), captioned=True))
        except Exception as err:
            self.timeline.reset()
            return [f"the timeline's columns before the resume could not be read back: {err!r}"]
        return []

    def warm_up(self) -> list[str]:
        """Does the rendering's and encoding's first-time work on one probe, touching no file.

        Matplotlib's colormap table, Pillow's caption font, SciPy's and TensorFlow's first calls
        (the PNG encode) cost far more the first time than later. The callback submits this
        job to the `Worker` at `on_train_begin`, so it runs where the steps will (on the
        worker's thread, or inline) and not with the first logged step. Nothing is written and
        no state of the run (timeline, byte cap) changes; an error is left to the first step,
        which meets it again and reports it. Returns no warnings.
        """
        with contextlib.suppress(Exception):
            raw = self.raw[:1]
            flat = np.zeros((1, *raw.shape[1:3]), np.float32)
            self.writer.encode(self.renderer.panels(raw, flat, ["#0"]))
        return []

    def _cap(self, encoded: list[tuple[str, list[bytes], np.ndarray, str]], step: int) -> list[str]:
        """Drops the last per-probe, then background, samples beyond `max_step_bytes`."""
        total = sum(len(b) for _, pngs, _, _ in encoded for b in pngs)
        if total <= self.max_step_bytes:
            return []
        dropped: dict[str, int] = {}
        for tag in ("saliency/background", "saliency/probes"):
            for _, pngs, _, _ in (e for e in encoded if e[0] == tag):
                while pngs and total > self.max_step_bytes:
                    total -= len(pngs.pop())
                    dropped[tag] = dropped.get(tag, 0) + 1
        if self._warned_cap or not dropped:
            return []
        self._warned_cap = True
        left = ", ".join(f"the last {k} samples of {tag}" for tag, k in dropped.items())
        return [
            f"at epoch {step} the images exceed max_step_bytes={self.max_step_bytes} bytes; "
            f"{left} are left out of the event file (the overview and timeline still show "
            "every probe). Raise `max_step_bytes` to keep them (warned once per fit)."
        ]


class Worker:
    """Runs step jobs inline (`background=False`) or on one background thread, in order.

    Args:
        background: Whether to run the jobs on a background thread.
    """

    def __init__(self, background: bool = True) -> None:
        self.background = bool(background)
        self._thread: threading.Thread | None = None
        self._jobs: queue.Queue[tuple[int, Callable[[], list[str]]] | None] = queue.Queue(1)
        self._idle = threading.Event()
        self._idle.set()
        self._reports: list[tuple[str, BaseException | None]] = []
        self._lock = threading.Lock()
        self._previous_sigint: Any = None
        self._sigint_handler: Any = None

    def submit(self, step: int, job: Callable[[], list[str]]) -> None:
        """Runs `job` (which returns warnings); first waits for the previous one, if any.

        Inline, the job's exceptions propagate; in the background they are kept for `take`.
        """
        if not self.background:
            self._report(job())
            return
        self.wait()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=f"{_NAME}-writer", daemon=True)
            self._thread.start()
            _LIVE.add(self)
        self._idle.clear()
        self._jobs.put((step, job))

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            step, job = item
            try:
                self._report(job())
            except BaseException as err:  # reported on the training thread, never lost
                message = (
                    f"saliency at epoch {step} failed and was skipped; training continues. "
                    f"{type(err).__name__}: {err}"
                )
                with self._lock:
                    self._reports.append((message, err))
            finally:
                del item, job
                self._idle.set()

    def _report(self, messages: list[str]) -> None:
        with self._lock:
            self._reports += [(m, None) for m in messages]

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the pending step; returns whether none is left pending."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Waits for the pending step and ends the thread (a later `submit` starts another)."""
        self.wait()
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            thread.join()
        _LIVE.discard(self)

    def take(self) -> list[tuple[str, BaseException | None]]:
        """The warnings and errors reported since the last call, oldest first."""
        with self._lock:
            reports, self._reports = self._reports, []
        return reports

    # -- Ctrl-C during fit: write the pending step first -------------------------------------

    def install_sigint_wait(self) -> None:
        """Makes SIGINT wait (up to 30 s) for the pending step before the usual handler runs.

        Only from the main thread and over a Python handler (the default one raises
        `KeyboardInterrupt`); otherwise nothing is changed.
        """
        self.remove_sigint_wait()
        if threading.current_thread() is not threading.main_thread() or not self.background:
            return
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):
            return

        def handler(signum: int, frame: Any) -> Any:
            self.wait(_SIGINT_WAIT_S)
            return previous(signum, frame)

        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, handler)
            self._previous_sigint, self._sigint_handler = previous, handler

    def remove_sigint_wait(self) -> None:
        """Restores the SIGINT handler replaced by `install_sigint_wait` (if still ours)."""
        handler, previous = self._sigint_handler, self._previous_sigint
        self._sigint_handler = self._previous_sigint = None
        if handler is None or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, previous)
