"""The shortcut alarm: like `EarlyStopping`, it watches one logged signal and fires when the
signal stays on the wrong side of a threshold for `patience` logged epochs."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

import numpy as np

from saliency_callback.shortcuts.calibration import DEFAULT_MARGIN

Mode = Literal["auto", "below", "above"]
RelativeTo = Literal["chance", "first", "above_chance"]

DEFAULT_MONITOR = "background/harm_low"
DEFAULT_THRESHOLD = DEFAULT_MARGIN
DEFAULT_RELATIVE_TO: RelativeTo | None = None
"""The recommended alarm, from `benchmarks/bench_detection.py` (docs/detection.md, "Which signal
to trust"): the lower bound of the estimated harm above 0.05 (`calibration`). The harm is the
accuracy the model loses where the background disagrees with the object, estimated from the
probes' background swaps; its one-sided 95% lower bound comes from the probes' own spread, so
the alarm means the same with 8 probes or 64 (more probes: a narrower interval, earlier
detection). It needs masks or boxes; labels are optional. The margin (0.05) and the level
(95%) were fixed a priori, not tuned on the benchmark."""

# monitor -> (side on which it signals a shortcut, what its chance level is, or None)
MONITORS: dict[str, tuple[str, str | None]] = {
    "mass_in_mask": ("below", "the masks' area fraction"),
    "pointing_game": ("below", "the masks' area fraction"),
    "rank_in_mask": ("below", "the masks' area fraction"),
    "background/gap": ("above", None),
    "background/flip_rate": ("above", None),
    "background/reliance": ("above", None),
    "background/harm": ("above", None),
    "background/harm_low": ("above", None),
    "background/harm_high": ("above", None),
    "background/swap_change": ("above", None),
    "background/only_bg_accuracy": ("above", "1/K"),
    "background/only_fg_accuracy": ("below", "1/K"),
    "background/mixed_rand_accuracy": ("below", "1/K"),
    "background/mixed_same_accuracy": ("below", "1/K"),
    "probe_accuracy": ("below", "1/K"),
    "hotspot": ("above", "the score of randomly shifted maps"),
}
MASK_MONITORS = ("mass_in_mask", "pointing_game", "rank_in_mask")


def monitor_name(monitor: str) -> str:
    """The canonical name of a signal: `"saliency/background/gap"`, `"saliency_background_gap"`
    (the Keras `logs` key) and `"background/gap"` all name `"background/gap"`.

    Raises:
        TypeError, ValueError: For a name that is not a str or no known signal.
    """
    if not isinstance(monitor, str):
        raise TypeError(f"expected `monitor` to be a str, received {monitor!r}")
    name = monitor.removeprefix("saliency/").removeprefix("saliency_")
    if name not in MONITORS and name.startswith("background_"):
        name = "background/" + name.removeprefix("background_")
    if name not in MONITORS:
        raise ValueError(
            f"Unknown alarm `monitor`: received {monitor!r}; expected one of {list(MONITORS)}"
        )
    return name


@dataclass(frozen=True)
class AlarmEvent:
    """One firing of the alarm.

    Attributes:
        step: The step (epoch) at which it fired.
        monitor: The watched signal, e.g. `"mass_in_mask"` or `"background/gap"`.
        value: The signal's value at that step (the mean over probes).
        limit: The threshold it crossed (after `relative_to`).
        chance: The signal's chance level, when it has one.
        worst: `(probe index, value)` of the most affected probes, worst first (for signals
            measured per probe).
        message: A sentence a person understands.
    """

    step: int
    monitor: str
    value: float
    limit: float
    chance: float | None
    worst: tuple[tuple[int, float], ...]
    message: str

    @property
    def mean_mass(self) -> float:
        """The mean mass in mask (for `monitor="mass_in_mask"`; NaN otherwise)."""
        return self.value if self.monitor == "mass_in_mask" else math.nan


@dataclass
class ShortcutAlarm:
    """Watches one signal the callback logs and fires when it signals a shortcut.

    Pass it to the callback: `SaliencyCallback(..., alarm=ShortcutAlarm(...))`. Each logged
    epoch (not the pre-training log) it compares the signal with the threshold; after
    `patience` logged epochs in a row on the wrong side it fires: a warning, the scalar
    `saliency/alarm`, the text `saliency/alarm_message`, and with `stop_training=True` the
    end of training. After firing it re-arms once the signal is back on the right side.

    Args:
        threshold: The limit, as a value of the signal; a multiple of its chance level
            (`relative_to="chance"`) or of its value at the first logged epoch
            (`relative_to="first"`); or the fraction of the way from its chance level to 1
            (`relative_to="above_chance"`: 0.5 is halfway). Defaults to `None`: the
            recommended alarm, `0.05` on `"background/harm_low"` (the estimated accuracy lost
            where the background disagrees, at its 95% lower bound); any other `monitor` needs
            an explicit threshold.
        patience: Logged epochs in a row on the wrong side before firing. Defaults to `1`.
        relative: Deprecated spelling of `relative_to="chance"`. Defaults to `False`.
        monitor: The signal: `"background/harm_low"` (the default), `"background/harm"`,
            `"background/reliance"`, `"background/flip_rate"`, `"background/gap"`,
            `"background/only_bg_accuracy"`, `"background/mixed_rand_accuracy"`,
            ... (background tests: need masks or boxes; accuracies and the gap need labels),
            `"mass_in_mask"`, `"pointing_game"`, `"rank_in_mask"` (need masks or boxes),
            `"probe_accuracy"`, `"hotspot"` (saliency piling up at the same pixels; needs no
            masks). `"saliency/..."` and the Keras logs spelling `"saliency_background_gap"`
            are accepted too. With a `threshold` the monitor must be named (it used to default
            to `"mass_in_mask"`).
        mode: `"below"` fires when the signal is below the limit, `"above"` when above;
            `"auto"` picks the side that means a shortcut (below for the mask metrics and
            accuracies on the object, above for the gap, flip rate, hotspot and
            only-background accuracy). Defaults to `"auto"`.
        relative_to: `None` (absolute), `"chance"`, `"first"` or `"above_chance"`. Defaults to
            `None`.
        stop_training: Whether firing stops training. Defaults to `False`.

    Raises:
        TypeError, ValueError: For an unknown monitor or mode, a threshold that is not a finite
            number (or not in (0, 1] for an absolute mask metric), a threshold without a named
            monitor, a monitor other than the default without a threshold, a signal without
            chance level with `relative_to="chance"` or `"above_chance"`, or `patience < 1`.

    Example:
    >>> alarm = ShortcutAlarm()                      # the recommended (calibrated) alarm
    >>> alarm = ShortcutAlarm(0.5, monitor="background/reliance")  # the former default
    >>> alarm = ShortcutAlarm(0.5, monitor="background/gap", patience=2)
    >>> alarm = ShortcutAlarm(1.0, monitor="mass_in_mask", relative_to="chance")
    """

    threshold: float = None  # type: ignore[assignment]  # None: the recommended alarm
    patience: int = 1
    relative: bool = False
    _: KW_ONLY
    monitor: str = None  # type: ignore[assignment]  # None: the recommended monitor
    mode: Mode = "auto"
    relative_to: RelativeTo | None = None
    stop_training: bool = False
    _streak: int = field(default=0, init=False, repr=False)
    _armed: bool = field(default=True, init=False, repr=False)
    _first: float | None = field(default=None, init=False, repr=False)
    _warned_no_chance: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.monitor is None:
            if self.threshold is not None:
                raise ValueError(
                    f"ShortcutAlarm({self.threshold!r}) needs the signal it applies to: write "
                    f"ShortcutAlarm({self.threshold!r}, monitor='mass_in_mask') for the former "
                    "default, or ShortcutAlarm() for the recommended alarm "
                    f"({DEFAULT_MONITOR!r} above {DEFAULT_THRESHOLD})"
                )
            self.monitor = DEFAULT_MONITOR
        self.monitor = monitor_name(self.monitor)
        if self.threshold is None:
            if self.monitor != DEFAULT_MONITOR:
                raise ValueError(
                    f"ShortcutAlarm(monitor={self.monitor!r}) needs a `threshold`; only the "
                    f"default monitor {DEFAULT_MONITOR!r} has a default threshold"
                )
            self.threshold = DEFAULT_THRESHOLD
            if self.relative_to is None and not self.relative:
                self.relative_to = DEFAULT_RELATIVE_TO
        if self.relative:
            if self.relative_to not in (None, "chance"):
                raise ValueError(
                    f"received relative=True and relative_to={self.relative_to!r}; pass only "
                    "`relative_to`"
                )
            self.relative_to = "chance"
        if self.relative_to not in (None, "chance", "first", "above_chance"):
            raise ValueError(
                "expected `relative_to` in (None, 'chance', 'first', 'above_chance'), received "
                f"{self.relative_to!r}"
            )
        chance = MONITORS[self.monitor][1]
        if self.mode not in ("auto", "below", "above"):
            raise ValueError(
                f"expected `mode` in ('auto', 'below', 'above'), received {self.mode!r}"
            )
        if self.relative_to in ("chance", "above_chance") and chance is None:
            raise ValueError(
                f"the signal {self.monitor!r} has no chance level; use an absolute threshold "
                "or relative_to='first'"
            )
        if isinstance(self.threshold, bool) or not isinstance(
            self.threshold, (int, float, np.integer, np.floating)
        ):
            raise TypeError(
                f"expected `alarm_threshold` to be a float, received {self.threshold!r}"
            )
        self.threshold = float(self.threshold)
        absolute_fraction = self.relative_to is None and self.monitor in MASK_MONITORS
        if not math.isfinite(self.threshold) or (absolute_fraction and not 0 < self.threshold <= 1):
            what = "in (0, 1]" if absolute_fraction else "finite"
            raise ValueError(
                f"expected `alarm_threshold` {what}, received alarm_threshold={self.threshold}"
            )
        if self.relative_to is not None and self.threshold <= 0:
            raise ValueError(
                f"expected `alarm_threshold` > 0 relative to {self.relative_to}, received "
                f"alarm_threshold={self.threshold}"
            )
        if isinstance(self.patience, bool) or not isinstance(self.patience, (int, np.integer)):
            raise TypeError(f"expected `patience` to be an int, received {self.patience!r}")
        if self.patience < 1:
            raise ValueError(f"expected `patience` >= 1, received patience={self.patience}")

    @property
    def side(self) -> str:
        """`"below"` or `"above"`: where the signal must be for an epoch to count."""
        return MONITORS[self.monitor][0] if self.mode == "auto" else self.mode

    @property
    def needs_masks(self) -> bool:
        return self.monitor in MASK_MONITORS or self.monitor.startswith("background/")

    def reset(self) -> None:
        """Forgets the streak and the first value (called at the start of each `fit`)."""
        self._streak, self._armed, self._first = 0, True, None
        self._warned_no_chance = False

    def limit(self, chance: float | None) -> float:
        """The value of the signal beyond which an epoch counts."""
        if self.relative_to == "chance":
            return self.threshold * (math.nan if chance is None else chance)
        if self.relative_to == "above_chance":
            base = math.nan if chance is None else chance
            return base + self.threshold * (1.0 - base)
        if self.relative_to == "first":
            return self.threshold * (math.nan if self._first is None else self._first)
        return self.threshold

    def update(
        self,
        step: int,
        value: float,
        per_probe: np.ndarray | None = None,
        chance: float | None = None,
        *,
        context: Mapping[str, float] | None = None,
    ) -> AlarmEvent | None:
        """Takes one logged epoch's signal; returns an event when the alarm fires.

        A NaN value (no probe could be measured) neither counts nor breaks the streak. So does
        a value whose chance level is missing (`relative_to="chance"` or `"above_chance"`), with
        a warning (once until `reset`): the limit is unknown, and the alarm cannot fire.
        `context` holds the epoch's other signals (e.g. `"background/harm"` and its bounds,
        quoted in the message of the harm alarm); it never changes the decision.
        """
        if not math.isfinite(value):
            return None
        if self._first is None:
            self._first = value
        limit = self.limit(chance)
        if math.isnan(limit):
            if not self._warned_no_chance:
                self._warned_no_chance = True
                warnings.warn(
                    f"ShortcutAlarm on {self.monitor!r} with relative_to={self.relative_to!r}: "
                    f"no chance level at step {step} (received chance={chance!r}), so the limit "
                    "is unknown and the alarm cannot fire at such steps",
                    stacklevel=3,
                )
            return None
        wrong = value < limit if self.side == "below" else value > limit
        if not wrong:
            self._streak, self._armed = 0, True
            return None
        self._streak += 1
        if self._streak < self.patience or not self._armed:
            return None
        self._armed = False
        worst: tuple[tuple[int, float], ...] = ()
        if per_probe is not None:
            valid = np.isfinite(per_probe)
            key = per_probe if self.side == "below" else -per_probe
            order = [int(i) for i in np.argsort(np.where(valid, key, np.inf)) if valid[i]][:5]
            worst = tuple((i, float(per_probe[i])) for i in order)
        message = self._message(step, value, limit, chance, worst, context or {})
        return AlarmEvent(step, self.monitor, value, limit, chance, worst, message)

    def _message(
        self,
        step: int,
        value: float,
        limit: float,
        chance: float | None,
        worst: tuple[tuple[int, float], ...],
        context: Mapping[str, float],
    ) -> str:
        when = f"after epoch {step + 1} (step {step})"
        streak = f"for {self._streak} logged epoch(s)"
        side = "below" if self.side == "below" else "above"
        if self.monitor == "mass_in_mask":
            listing = ", ".join(f"#{i} ({m:.0%} inside)" for i, m in worst)
            text = (
                f"Saliency is off the object: {when}, only {value:.0%} of the saliency mass "
                f"falls inside the foreground masks on average ({1 - value:.0%} outside; a map "
                f"that ignores the object would put {chance or math.nan:.0%} inside), below "
                f"the threshold of {limit:.0%} {streak}. The model may be using the background "
                "as a shortcut."
            )
            return text + (f" Most affected probes: {listing}." if listing else "")
        if self.monitor in ("background/harm", "background/harm_low", "background/harm_high"):
            harm = context.get(
                "background/harm", value if self.monitor.endswith("harm") else math.nan
            )
            low = context.get("background/harm_low", math.nan)
            high = context.get("background/harm_high", math.nan)
            listing = ", ".join(f"#{i} ({v:+.0%})" for i, v in worst)
            text = (
                f"Predictions follow the background: {when}, the model is estimated to lose "
                f"{harm:.0%} accuracy (95% bounds {low:.0%} to {high:.0%}) on images whose "
                "background disagrees with the object, from the probes' background swaps; "
                f"{self.monitor.removeprefix('background/')} = {value:.0%} is above the threshold "
                f"of {limit:.0%} {streak}."
            )
            return text + (f" Probes that lose most: {listing}." if listing else "")
        if self.monitor == "background/gap":
            text = (
                f"Predictions follow the background: {when}, probe accuracy drops by "
                f"{value:.0%} when each object is pasted onto another probe's background "
                f"(threshold {limit:.0%}) {streak}."
            )
        elif self.monitor == "background/flip_rate":
            text = (
                f"Predictions follow the background: {when}, {value:.0%} of background swaps "
                f"change the predicted class (threshold {limit:.0%}) {streak}."
            )
        elif self.monitor == "background/reliance":
            text = (
                f"Predictions follow the background: {when}, with each object pasted onto "
                f"another probe's background, the prediction follows the background's probe "
                f"more often than the object's by {value:.0%} of the swaps (threshold "
                f"{limit:.0%}) {streak}."
            )
        elif self.monitor == "background/only_bg_accuracy":
            text = (
                f"The background alone gives the class away: {when}, the model is right on "
                f"{value:.0%} of probes with the object removed (chance {chance or math.nan:.0%},"
                f" threshold {limit:.0%}) {streak}."
            )
        else:
            text = (
                f"Shortcut alarm: {when}, {self.monitor} = {value:.3g} is {side} the threshold "
                f"{limit:.3g} {streak}."
            )
        flipped = [f"#{i}" for i, v in worst if v > 0] if self.side == "above" else []
        return text + (f" Probes whose prediction flips: {', '.join(flipped)}." if flipped else "")
