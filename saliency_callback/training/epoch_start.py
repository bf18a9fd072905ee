"""Notices when an epoch's first batch waits with the process idle, so the wait is not blamed
on the callback.

With arrays passed to `fit`, Keras makes a new `tf.data` iterator for every epoch, and
TensorFlow's teardown of the previous one now and then waits 0.7-5 s, with every core idle,
before the epoch's first batch (`docs/performance-fit.md`, "What the slow epochs are"). It
happens with or without this callback, which does no work there; but a user who sees training
stutter after adding the callback will suspect it. `EpochStartWatch` times each epoch from the
end of the callback's own `on_epoch_begin` to the first training batch, with the process's CPU
time over the same span, and words a long, idle wait once per `fit`.

Pure Python; never imports the callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

WAIT_S = 1.0
"""A wait before the first batch longer than this (seconds) is worth a word."""

IDLE_SHARE = 0.25
"""...if the process's CPU time over the wait is below this share of it (nobody worked: not
the callback, not a data pipeline producing the batch)."""


@dataclass
class EpochStartWatch:
    """Times each epoch's start; `first_batch` returns a message the first time in a `fit` an
    epoch waited longer than `threshold_s` with the process idle, otherwise `None`. `clock` and
    `cpu_clock` are the wall and the process-CPU clocks (seconds), replaceable in tests."""

    threshold_s: float = WAIT_S
    told: bool = False
    clock: Callable[[], float] = field(default=time.perf_counter, repr=False)
    cpu_clock: Callable[[], float] = field(default=time.process_time, repr=False)
    _start: tuple[int, float, float] | None = field(default=None, repr=False)

    def reset(self) -> None:
        """A new `fit`: nothing pending, and the next idle wait is worded again."""
        self._start, self.told = None, False

    def epoch_begin(self, epoch: int) -> None:
        self._start = (epoch, self.clock(), self.cpu_clock())

    @property
    def pending(self) -> bool:
        """Whether an epoch began and its first batch has not been seen yet."""
        return self._start is not None

    def first_batch(self) -> str | None:
        if self._start is None:
            return None
        epoch, wall, cpu = self._start
        self._start = None
        wait, busy = self.clock() - wall, self.cpu_clock() - cpu
        if self.told or wait <= self.threshold_s or busy >= IDLE_SHARE * wait:
            return None
        self.told = True
        return (
            f"the first batch of epoch {epoch + 1} started {wait:.1f} s after the epoch began, "
            f"with the process idle ({busy:.2f} s of CPU); this callback does no work there. "
            "With arrays passed to `fit`, this is usually TensorFlow tearing down the previous "
            "epoch's tf.data iterator, with or without this callback; a tf.data.Dataset with "
            "`options.autotune.enabled = False` does not wait (troubleshooting page, 'An "
            "epoch sometimes starts seconds late'). Said once per fit."
        )
