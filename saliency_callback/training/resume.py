"""Resuming after a preemption (`keras.callbacks.BackupAndRestore`): no duplicates, no gaps.

When a `fit` starts at epoch `start > 0` (a resume, or an explicit `initial_epoch`), the
callback reads back what its run directory already holds (`read_history`, without
TensorFlow, applying TensorBoard's purge rule) and then:

- duplicates: steps `>= start` already in the event files were written by the interrupted run
  after its last backup (their epochs are trained again). A `SessionLog.START` event at step
  `start` (`RunWriter.restart`) makes TensorBoard discard them, as it does after a TensorFlow
  restart, so each step shows once, with the resumed run's data (TensorBoard takes a run's
  first START for its start, not a restart, so the first resume writes two);
- gaps: step `start - 1` (the state `BackupAndRestore` restored, with its default
  `save_freq="epoch"`) is logged at once if it is due and missing, or incomplete (e.g. the
  interrupted run was killed while the background worker was writing it: its images without
  its scalars, which each step writes last, are discarded as above and written again);
- the alarm: its streak is rebuilt by replaying the monitored scalar of the steps before
  `start` (`replay_alarm`), so `patience` counts across the interruption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saliency_callback.output.event_file import event_files, read_events
from saliency_callback.output.runs import PROBES_TAG
from saliency_callback.shortcuts.alarm import ShortcutAlarm

__all__ = ["RunHistory", "continue_run", "read_history", "replay_alarm", "replay_chances"]

_DT_FLOAT = 1


@dataclass
class RunHistory:
    """The steps and scalar values of a run directory, as TensorBoard shows them."""

    steps: set[int] = field(default_factory=set)
    started: bool = False  # whether the run holds a SessionLog.START event

    @property
    def complete(self) -> set[int]:
        """Steps whose scalars (each step's last write) are in: the others were cut short."""
        return {s for values in self.scalars.values() for s in values}

    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    panels: dict[int, list[bytes]] = field(default_factory=dict)  # PROBES_TAG's PNGs per step

    def purge_from(self, step: int) -> None:
        """Forgets everything at `step` or later (TensorBoard's rule at a restart)."""
        self.steps = {s for s in self.steps if s < step}
        self.panels = {s: pngs for s, pngs in self.panels.items() if s < step}
        for values in self.scalars.values():
            for s in [s for s in values if s >= step]:
                del values[s]

    def logged_panels(self) -> list[tuple[int, list[bytes]]]:
        """The probes' panels (PNGs) of each complete step, in step order: what the run's
        timeline was built from (`StepWriter.resume_timeline`)."""
        return [(s, self.panels[s]) for s in sorted(self.panels) if s in self.complete]


def read_history(run_dir: str, panels: bool = False) -> RunHistory:
    """Reads the run's event files in order (local or remote paths; none: empty history);
    with `panels`, also the PNGs of every step's `PROBES_TAG` image (kept encoded)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.util import tensor_util

    history = RunHistory()
    for path in event_files(run_dir):
        for event in read_events(path):
            if event.HasField("session_log"):
                if event.session_log.status == event_pb2.SessionLog.START:
                    history.purge_from(event.step)
                    history.started = True
                continue
            if not event.HasField("summary"):
                continue
            history.steps.add(event.step)
            for value in event.summary.value:
                if panels and value.tag == PROBES_TAG and value.HasField("tensor"):
                    history.panels[event.step] = list(value.tensor.string_val[2:])
                elif value.HasField("tensor") and value.tensor.dtype == _DT_FLOAT:
                    number = float(np.asarray(tensor_util.make_ndarray(value.tensor)).ravel()[0])
                    history.scalars.setdefault(value.tag, {})[event.step] = number
    return history


def replay_alarm(
    alarm: ShortcutAlarm, history: RunHistory, before: int, chance: dict[int, float | None]
) -> None:
    """Feeds the alarm the monitored values logged before step `before` (silently).

    `chance` maps each step to the chance level the alarm needs (or `None`). The pre-training
    step `-1` is left out, as during training.
    """
    values = history.scalars.get(f"saliency/{alarm.monitor}", {})
    for step in sorted(s for s in values if 0 <= s < before):
        alarm.update(step, values[step], None, chance.get(step))


def replay_chances(
    monitor: str,
    history: RunHistory,
    num_classes: int | None,
    probe_chance: np.ndarray | None = None,
) -> dict[int, float | None]:
    """The chance level of `monitor` at each logged step, as the live path computed it.

    For `mass_in_mask` that is the mean of `probe_chance` (each probe's mask area fraction)
    over the probes whose mass was measured at that step (read back from the per-probe
    scalars: a map without positive mass has none: NaN in runs written before NaN was left
    out, no value at that step since), not over every probe.
    """
    if monitor == "probe_accuracy":
        return {s: 1.0 / max(num_classes or 2, 2) for s in history.steps}
    if monitor == "mass_in_mask" and probe_chance is not None:
        per_probe = [
            history.scalars.get(f"saliency/mass_in_mask/probe_{i:02d}", {})
            for i in range(len(probe_chance))
        ]
        chances: dict[int, float | None] = {}
        for step in history.scalars.get("saliency/mass_in_mask", {}):
            # A step's scalars are one event: a probe without a value was not measured.
            valid = np.isfinite([values.get(step, np.nan) for values in per_probe])
            chances[step] = float(probe_chance[valid].mean()) if valid.any() else None
        return chances
    tag = "background/only_bg_chance" if monitor.startswith("background/") else None
    if monitor in ("mass_in_mask", "pointing_game", "rank_in_mask"):
        tag = "mass_in_mask_chance"
    elif monitor == "hotspot":
        tag = "hotspot_chance"
    return dict(history.scalars.get(f"saliency/{tag}", {})) if tag else {}


def continue_run(
    history: RunHistory,
    writer: Any,
    start: int,
    alarm: ShortcutAlarm | None,
    num_classes: int | None,
    chance: np.ndarray | None,
) -> None:
    """Discards the steps the interrupted run wrote after its last backup (or cut short) from
    `writer`'s run, and replays the alarm's streak up to `start` (the worker must be idle)."""
    previous = start - 1  # the restored weights are those after epoch start-1
    cut = previous if previous in history.steps - history.complete else start
    if max(history.steps) >= cut:  # after the last backup, or cut short: discarded
        writer.restart(cut, twice=not history.started)
        history.purge_from(cut)
    if alarm is not None:
        chances = replay_chances(alarm.monitor, history, num_classes, chance)
        replay_alarm(alarm, history, start, chances)
