"""The alarm's bookkeeping at a logged epoch: which signal it judges, and when it cannot.

`AlarmStep.update` feeds the watched signal to the `ShortcutAlarm`, writes its limit (and
`saliency/alarm` where it judged) into the step's scalars, and returns the event and the
message for `saliency/alarm_message`. Stopping training on an event is the callback's.
"""

from __future__ import annotations

import math
import warnings

from saliency_callback.shortcuts.alarm import AlarmEvent, ShortcutAlarm
from saliency_callback.shortcuts.unmeasured import alarm_cannot_judge
from saliency_callback.training.signals import Signals

NAME = "SaliencyCallback"


class AlarmStep:
    """Judges one logged epoch's signals; warns once per fit about a signal never measured."""

    def __init__(self) -> None:
        self.warned_missing = False

    def reset(self) -> None:
        """A new fit: the missing signal is warned about again."""
        self.warned_missing = False

    def update(
        self,
        alarm: ShortcutAlarm,
        step: int,
        signals: Signals,
        scalars: dict[str, float],
        regions_missing: bool,
    ) -> tuple[AlarmEvent | None, str | None]:
        """Updates `alarm`; returns its event (or `None`) and the step's message (or `None`)."""
        signal = signals.get(alarm.monitor)
        background_monitor = alarm.monitor.startswith("background/")
        if signal is None and background_monitor and regions_missing:
            return None, (  # `saliency/alarm` is not written: the alarm did not judge this epoch
                f"Shortcut alarm could not run: {alarm.monitor} needs the background "
                "tests, and no plausible object was found in any probe image. Pass "
                "`boxes=` or `masks=` to watch for background shortcuts."
            )
        if signal is None:  # e.g. a background accuracy of a regression model: never logged
            if not self.warned_missing:
                self.warned_missing = True
                warnings.warn(
                    f"{NAME}: the alarm watches {alarm.monitor!r}, which is not measured "
                    f"for this model and probe set (at epoch {step} it logs "
                    f"{sorted(signals)}); the alarm cannot fire",
                    stacklevel=5,
                )
            return None, None
        context = {name: value for name, (value, _, _) in signals.items()}
        # Cannot tell (e.g. a harm resting on fewer than 2 probes): the step is not judged, and
        # `saliency/alarm` is not written there (neither 0 nor NaN; see `unmeasured`).
        judged = not alarm_cannot_judge(alarm.monitor, context)
        event = None
        if judged and alarm.monitor.startswith("background/harm"):  # quotes the bounds
            event = alarm.update(step, *signal, context=context)
        elif judged:
            event = alarm.update(step, *signal)
        # The threshold at this step, on the watched signal (the dashboard draws it).
        limit = scalars[f"saliency/alarm_limit/{alarm.monitor}"] = alarm.limit(signal[2])
        if judged and math.isfinite(limit):  # (an unknown chance level: not judged either)
            scalars["saliency/alarm"] = float(event is not None)
        return event, None if event is None else event.message
