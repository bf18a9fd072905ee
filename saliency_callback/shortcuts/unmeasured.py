"""Signals that cannot be measured at a step: left out, said once per fit, and "cannot tell".

A scalar that cannot be estimated at a logged step (the harm's bounds resting on fewer than two
probes, an accuracy over no probe, the reliance without any background swap, a mass in mask
without mass) is simply not written at that step: neither to the event file nor to Keras's
`logs`, so that no chart, progress bar, `CSVLogger` or `EarlyStopping` ever reads NaN. The
callback says which signals and why once per fit (`Unmeasured.warning`); the count the harm
rests on, `saliency/background/harm_probes`, is written at every step.

An alarm whose signal cannot be measured at a step (missing, or for a harm signal resting on
fewer than `MIN_HARM_PROBES` probes: `alarm_cannot_judge`) does not judge that step:
`saliency/alarm` is not written there (it is neither 0, "no alarm", nor NaN), while the
threshold `saliency/alarm_limit/<signal>` still is. Readers (the Saliency tab, the report) then
say "cannot tell", never "all clear" (`judge`).

Pure Python: the TensorBoard plugin imports it without TensorFlow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HARM_PROBES",
    "HARM_SIGNALS",
    "MIN_HARM_PROBES",
    "StepContext",
    "Unmeasured",
    "alarm_cannot_judge",
    "cannot_tell_sentence",
    "empty_mask_signals",
    "harm_cannot_tell",
    "harm_reason",
    "judge",
    "reason",
]

MIN_HARM_PROBES = 2
"""The fewest probes whose background swaps give the harm's bounds (a spread needs two)."""
HARM_SIGNALS = frozenset({"background/harm", "background/harm_low", "background/harm_high"})
HARM_PROBES = "background/harm_probes"
_PREFIX = "saliency/"
_PER_PROBE = re.compile(r"^(?P<base>.+)/probe_\d+$")
_SWAPS = frozenset(
    {
        "background/flip_rate",
        "background/reliance",
        "background/gap",
        "background/mixed_rand_accuracy",
        "background/mixed_rand_mae",
        "background/swap_change",
    }
)
_MASKS = frozenset({"mass_in_mask", "pointing_game", "rank_in_mask"})


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def harm_cannot_tell(probes: float | None, low: float | None) -> bool:
    """Whether the harm estimate cannot tell at a step.

    Args:
        probes: `saliency/background/harm_probes` at the step, or `None` (a run written before
            it was logged: then the bound alone decides).
        low: `saliency/background/harm_low` at the step, or `None` where it was not written.

    Returns:
        `True` when the estimate rests on fewer than `MIN_HARM_PROBES` probes or its lower
        bound is missing or not finite.
    """
    if probes is not None and not (_finite(probes) and probes >= MIN_HARM_PROBES):
        return True
    return not _finite(low)


def alarm_cannot_judge(monitor: str, values: Mapping[str, float]) -> bool:
    """Whether an alarm on `monitor` cannot judge a step whose signals are `values`
    (`{"background/harm_low": ..., ...}`, NaN where not measured): its signal is not finite, or
    it watches the harm and the harm cannot tell (`harm_cannot_tell`)."""
    if not _finite(values.get(monitor)):
        return True
    if monitor in HARM_SIGNALS:
        return harm_cannot_tell(values.get(HARM_PROBES), values.get("background/harm_low"))
    return False


def harm_reason(probes: int, total: int) -> str:
    """Why the harm cannot be estimated: `"the harm estimate rests on 1 of 6 probes (it needs
    2)"`."""
    return f"the harm estimate rests on {probes} of {total} probes (it needs {MIN_HARM_PROBES})"


def cannot_tell_sentence(probes: int | None, total: int | None) -> str:
    """The verdict's sentence when the harm cannot be estimated (the tab and the report)."""
    rests = (
        harm_reason(probes, total)
        if probes is not None and total
        else "the harm estimate has no lower bound"
    )
    return (
        f"Cannot tell: {rests}, so whether the background harms the predictions cannot be "
        "judged. Add probes (at least two per class) or labels."
    )


@dataclass(frozen=True)
class StepContext:
    """What the reasons quote: the probe count, the harm's count at the step, labels or not."""

    total: int
    harm_probes: int | None = None
    labels: bool = False


def reason(signal: str, context: StepContext) -> str:
    """Why `signal` (e.g. `"background/harm_low"`, with or without `saliency/`) could not be
    measured, with what to do about it where something can be done."""
    name = signal.removeprefix(_PREFIX)
    match = _PER_PROBE.match(name)
    if match:
        if match["base"] in _MASKS:
            return "the probe's mask is empty or its saliency map has no mass"
        return "the probe takes no part in it"
    if name in HARM_SIGNALS:
        probes = 0 if context.harm_probes is None else context.harm_probes
        advice = (
            "Pass more probes, with at least two per class"
            if context.labels
            else "Pass more probes (at least two per class), or labels"
        )
        return f"{harm_reason(probes, context.total)}. {advice}"
    if name in _SWAPS:
        return (
            "no probe has a background-swap partner (a probe of another class with both an "
            "object and a background). Pass probes of at least two classes"
        )
    if name == "background/mixed_same_accuracy":
        return "no probe has a partner of its own class"
    if name.startswith("background/"):
        return "no probe takes part in the background tests"
    if name in _MASKS:
        return "no probe's saliency map has mass with a non-empty mask"
    if name == "mass_in_mask_chance":
        return "every mask is empty"
    if name.startswith("alarm_limit/"):
        return "the alarm's threshold is relative to a level that is not known at this step"
    return "its value is NaN or infinite at this step"


def empty_mask_signals(masks: Any) -> set[str]:
    """The per-probe scalars of probes whose mask `(N, H, W)` is empty (or `None`): the callback
    names those probes when it is built, so they are not explained again."""
    if masks is None:
        return set()
    return {f"mass_in_mask/probe_{i:02d}" for i, m in enumerate(masks) if not m.any()}


def _names(names: list[str]) -> str:
    """`"a, b and c"`; several per-probe names of one signal as `"x/probe_NN for probes [1, 2]"`."""
    probes: dict[str, list[int]] = {}
    for name in names:
        match = _PER_PROBE.match(name)
        if match:
            probes.setdefault(match["base"], []).append(int(name.rsplit("_", 1)[1]))
    shown: list[str] = []
    for name in names:
        match = _PER_PROBE.match(name)
        if match is None or len(probes[match["base"]]) == 1:
            shown.append(name)
            continue
        grouped = f"{match['base']}/probe_NN for probes {probes[match['base']]}"
        if grouped not in shown:
            shown.append(grouped)
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


@dataclass
class Unmeasured:
    """Keeps non-finite scalars out of what is written; explains each signal once per fit."""

    _said: set[str] = field(default_factory=set)

    def reset(self, known: Iterable[str] = ()) -> None:
        """Forgets what was said (called at the start of each `fit`); `known` signals were
        explained otherwise (e.g. `empty_mask_signals`) and are left out silently."""
        self._said = set(known)

    @staticmethod
    def split(scalars: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
        """`(the finite scalars, the names of the others)`."""
        kept = {k: v for k, v in scalars.items() if math.isfinite(v)}
        return kept, [k for k in scalars if k not in kept]

    def keep(
        self, step: int, scalars: Mapping[str, float], total: int, labels: bool
    ) -> tuple[dict[str, float], str | None]:
        """`(the finite scalars of a step, the warning about the others or None)`.

        Args:
            step: The step.
            scalars: `{"saliency/...": value}`.
            total: The number of probes.
            labels: Whether the probes have class labels (the harm's advice depends on it).
        """
        kept, dropped = self.split(scalars)
        if not dropped:
            return kept, None
        count = scalars.get(_PREFIX + HARM_PROBES)
        harm_probes = int(count) if count is not None and math.isfinite(count) else None
        return kept, self.warning(step, dropped, StepContext(total, harm_probes, labels))

    def warning(self, step: int, dropped: list[str], context: StepContext) -> str | None:
        """The sentence explaining the `dropped` signals not explained yet in this fit, one
        clause per reason; `None` when there is none."""
        groups: dict[str, list[str]] = {}
        for signal in dropped:
            name = signal.removeprefix(_PREFIX)
            if name in self._said:
                continue
            self._said.add(name)
            groups.setdefault(reason(name, context), []).append(name)
        if not groups:
            return None
        clauses = [
            f"{_names(names)} not logged at step {step}: {why}." for why, names in groups.items()
        ]
        return " ".join(clauses) + (
            " (A value that cannot be measured is left out of TensorBoard and Keras's logs, "
            "never written as NaN; said once per fit.)"
        )


# -- reading a run back: the verdict -----------------------------------------------------------

_ALARM = _PREFIX + "alarm"
_LIMIT = _PREFIX + "alarm_limit/"


def _harm(scalars: Mapping[str, Mapping[int, float]], probes: int) -> dict[str, Any] | None:
    """The harm at its latest step: the estimate and bounds, or "cannot tell" and why."""
    harm = scalars.get(_PREFIX + "background/harm", {})
    counts = scalars.get(_PREFIX + HARM_PROBES, {})
    if not harm and not counts:
        return None
    last = max(set(harm) | set(counts))

    def at(name: str) -> float | None:
        value = scalars.get(_PREFIX + name, {}).get(last)
        return value if _finite(value) else None

    count = at(HARM_PROBES)
    n = None if count is None else int(count)
    cannot_tell = harm_cannot_tell(counts.get(last), at("background/harm_low"))
    return {
        "step": last,
        "value": at("background/harm"),
        "low": at("background/harm_low"),
        "high": at("background/harm_high"),
        "probes": n,
        "total": probes,
        "cannot_tell": cannot_tell,
        "sentence": cannot_tell_sentence(n, probes) if cannot_tell else None,
    }


def judge(
    scalars: Mapping[str, Mapping[int, float]], messages: Mapping[int, str], probes: int
) -> dict[str, Any]:
    """The verdict of a run, from what the callback wrote (the tab's and the report's).

    A step holding a finite `saliency/alarm` was judged; one holding the alarm's threshold
    (`saliency/alarm_limit/...`), a message without the alarm firing ("could not run"), or a NaN
    `saliency/alarm` (runs written before NaN was left out) was not. A message fires with
    `saliency/alarm` = 1 in the same step; one at a step without any scalar was cut short before
    its scalars and still counts as a firing.

    Args:
        scalars: `{"saliency/...": {step: value}}`.
        messages: `{step: text}` of `saliency/alarm_message`.
        probes: The number of probes (quoted by "cannot tell").

    Returns:
        `{"state", "alarm_steps", "first", "monitor", "checked", "unchecked", "reason",
        "harm"}`. `state` is `"alarm"` (it fired), `"cannot_tell"` (it never fired and did not
        judge its latest step, or watches a harm that cannot tell at its latest step), `"clear"`
        or `"none"` (no alarm). `reason` says why it cannot tell (else `None`); `harm` is the
        harm at its latest step (`value`, `low`, `high`, `probes`, `total`, `cannot_tell`,
        `sentence`), or `None` where the run holds none.
    """
    written = scalars.get(_ALARM, {})
    judged = {s: v for s, v in written.items() if math.isfinite(v)}
    with_scalars = {s for series in scalars.values() for s in series}
    fired = sorted(
        {s for s, v in judged.items() if v >= 0.5} | {s for s in messages if s not in with_scalars}
    )
    monitors = [t.removeprefix(_LIMIT) for t in scalars if t.startswith(_LIMIT)]
    monitor = monitors[0] if monitors else None
    seen = set(written) | set(messages) | {s for m in monitors for s in scalars[_LIMIT + m]}
    unchecked = sorted(seen - set(judged))
    harm = _harm(scalars, probes)
    harm_blocked = monitor in HARM_SIGNALS and harm is not None and harm["cannot_tell"]
    reason = None
    if fired:
        state = "alarm"
    elif not seen:
        state = "none"
    elif harm_blocked or (unchecked and (not judged or max(unchecked) > max(judged))):
        state = "cannot_tell"
        notes = [messages[s] for s in unchecked if s in messages]
        if harm_blocked:
            assert harm is not None
            reason = harm["sentence"]
        elif notes:
            reason = notes[-1]
        else:
            reason = (
                f"Cannot tell: the alarm's signal{f' {monitor}' if monitor else ''} could not be "
                f"measured at step {unchecked[-1]}, so the alarm could not judge it."
            )
    else:
        state = "clear"
    return {
        "state": state,
        "alarm_steps": fired,
        "first": fired[0] if fired else None,
        "monitor": monitor,
        "checked": len(judged),
        "unchecked": unchecked,
        "reason": reason,
        "harm": harm,
    }
