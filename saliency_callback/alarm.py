"""The shortcut alarm: fires when saliency stays off the object for `patience` logged epochs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AlarmEvent:
    """One firing of the alarm.

    Attributes:
        step: The step (epoch) at which it fired.
        mean_mass: Mean fraction of saliency mass inside the masks at that step.
        chance: Mean chance level (mask area fraction) of the probes.
        worst: `(probe index, mass in mask)` of the probes with the least mass, worst first.
        message: A sentence a person understands.
    """

    step: int
    mean_mass: float
    chance: float
    worst: tuple[tuple[int, float], ...]
    message: str


@dataclass
class ShortcutAlarm:
    """Watches the mean saliency mass inside the foreground masks, like `EarlyStopping`.

    The alarm fires when the mean mass in mask is below `threshold` for `patience` logged epochs
    in a row. With `relative=True` the threshold is a multiple of the chance level (the mean
    mask area fraction): `threshold=1.5` means "less than 1.5 times what a map that ignores the
    object would get". After firing it re-arms once the mass is back above the threshold.

    Args:
        threshold: Absolute fraction in [0, 1], or a positive multiple of chance with
            `relative=True`.
        patience: Logged epochs in a row below the threshold before firing. Defaults to `1`.
        relative: Whether `threshold` is relative to the chance level. Defaults to `False`.

    Raises:
        ValueError: For a threshold or patience out of range.
    """

    threshold: float
    patience: int = 1
    relative: bool = False
    _streak: int = field(default=0, init=False)
    _armed: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)):
            raise TypeError(
                f"expected `alarm_threshold` to be a float, received {self.threshold!r}"
            )
        limit = np.inf if self.relative else 1.0
        if not 0 < self.threshold <= limit:
            what = "> 0" if self.relative else "in (0, 1]"
            raise ValueError(
                f"expected `alarm_threshold` {what}, received alarm_threshold={self.threshold}"
            )
        if isinstance(self.patience, bool) or not isinstance(self.patience, int):
            raise TypeError(f"expected `patience` to be an int, received {self.patience!r}")
        if self.patience < 1:
            raise ValueError(f"expected `patience` >= 1, received patience={self.patience}")

    def reset(self) -> None:
        """Forgets the streak (called at the start of each `fit`)."""
        self._streak, self._armed = 0, True

    def limit(self, chance: float) -> float:
        """The mass-in-mask value below which an epoch counts as low."""
        return self.threshold * chance if self.relative else self.threshold

    def update(self, step: int, mass: np.ndarray, chance: np.ndarray) -> AlarmEvent | None:
        """Takes one logged epoch's per-probe mass in mask; returns an event when it fires.

        Probes with NaN mass (empty masks) are ignored.
        """
        valid = np.isfinite(mass)
        if not valid.any():
            return None
        mean_mass = float(mass[valid].mean())
        mean_chance = float(np.nanmean(chance[valid]))
        limit = self.limit(mean_chance)
        if mean_mass >= limit:
            self._streak, self._armed = 0, True
            return None
        self._streak += 1
        if self._streak < self.patience or not self._armed:
            return None
        self._armed = False
        order = [int(i) for i in np.argsort(np.where(valid, mass, np.inf)) if valid[i]][:5]
        worst = tuple((i, float(mass[i])) for i in order)
        listing = ", ".join(f"#{i} ({m:.0%} inside)" for i, m in worst)
        message = (
            f"Saliency is off the object: after epoch {step + 1} (step {step}), only "
            f"{mean_mass:.0%} of the saliency "
            f"mass falls inside the foreground masks on average ({1 - mean_mass:.0%} outside; a "
            f"map that ignores the object would put {mean_chance:.0%} inside), below the "
            f"threshold of {limit:.0%} for {self._streak} logged epoch(s). The model may be using "
            f"the background as a shortcut. Most affected probes: {listing}."
        )
        return AlarmEvent(step, mean_mass, mean_chance, worst, message)
