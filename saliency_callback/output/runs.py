"""Reading a log dir back for the report: the saliency runs the callback wrote, read with
TensorBoard's own reader (`read_saliency_runs`), and which steps a report shows."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from saliency_callback.output.charts import Series as Series
from saliency_callback.output.charts import svg_line_chart as svg_line_chart
from saliency_callback.shortcuts.unmeasured import judge

PROBES_TAG = "saliency/probes"
ALARM_TEXT_TAG = "saliency/alarm_message"


class LogDirError(ValueError):
    """The log dir is missing, empty, or holds no saliency runs."""


class ProgressLike(Protocol):
    """What `write_report` reports progress to (e.g. `commands.progress.Progress`)."""

    def update(self, done: int, detail: str = "") -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[str, int, str], ProgressLike]
"""`(label, total, unit) -> progress`; called once per long piece of work."""


class _NoProgress:
    def update(self, done: int, detail: str = "") -> None:
        return None

    def close(self) -> None:
        return None


def start_progress(
    factory: ProgressFactory | None, label: str, total: int, unit: str
) -> ProgressLike:
    return factory(label, total, unit) if factory is not None else _NoProgress()


@dataclass
class SaliencyRun:
    """The saliency summaries of one run directory.

    Attributes:
        name: The run's path relative to the log dir (`"."` for the log dir itself).
        path: The run directory.
        steps: Steps with probe panels, ascending.
        panels: Per step, the PNG bytes of each probe's panel (as written by the callback).
        description: The Markdown description of the `saliency/probes` summary.
        scalars: `saliency/...` scalar tags -> `[(step, value), ...]`, ascending steps.
        alarms: `(step, message)` of each alarm event (`saliency/alarm_message` where the
            alarm fired).
        nonfinite: Steps whose outputs were NaN/inf (`saliency/nonfinite`; no images).
        notes: `(step, message)` of the alarm's other messages (e.g. "could not run").
    """

    name: str
    path: str
    steps: list[int]
    panels: dict[int, list[bytes]]
    description: str = ""
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    alarms: list[tuple[int, str]] = field(default_factory=list)
    nonfinite: list[int] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)

    @property
    def num_probes(self) -> int:
        """Number of probes (the most panels logged at one step)."""
        return max((len(p) for p in self.panels.values()), default=0)

    @property
    def verdict(self) -> dict[str, Any]:
        """The alarm's verdict, as the Saliency tab gives it (`unmeasured.judge`): `state` is
        `"alarm"`, `"clear"`, `"cannot_tell"` (with its `reason`) or `"none"`."""
        scalars = {tag: dict(values) for tag, values in self.scalars.items()}
        return judge(scalars, dict(self.alarms + self.notes), self.num_probes)

    @property
    def has_alarm(self) -> bool:
        """Whether the run was logged with an alarm (its scalars or messages exist)."""
        return self.verdict["state"] != "none"


# --------------------------------------------------------------------------------------------
# Reading.
# --------------------------------------------------------------------------------------------


def _run_dirs(log_dir: str) -> list[str]:
    """Directories under `log_dir` (itself included) that hold event files, sorted."""
    found = []
    for root, dirs, files in os.walk(log_dir):
        dirs.sort()
        if any("tfevents" in f for f in files):
            found.append(root)
    return found


def _tensor_value(event: Any) -> np.ndarray:
    from tensorboard.util import tensor_util

    return np.asarray(tensor_util.make_ndarray(event.tensor_proto))


def _read_run(run_dir: str, name: str) -> SaliencyRun | None:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(
        run_dir,
        size_guidance={ea.TENSORS: 0, ea.IMAGES: 0, ea.SCALARS: 0},
    )
    acc.Reload()
    tags = acc.Tags().get(ea.TENSORS, [])
    if PROBES_TAG not in tags:
        return None
    panels: dict[int, list[bytes]] = {}
    for event in acc.Tensors(PROBES_TAG):
        value = _tensor_value(event)
        panels[int(event.step)] = [bytes(b) for b in value.reshape(-1)[2:]]
    run = SaliencyRun(
        name=name,
        path=run_dir,
        steps=sorted(panels),
        panels=panels,
        description=acc.SummaryMetadata(PROBES_TAG).summary_description,
    )
    for tag in tags:
        if not tag.startswith("saliency/") or tag == PROBES_TAG:
            continue
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin == "scalars":
            values: dict[int, float] = {}
            for event in acc.Tensors(tag):
                values[int(event.step)] = float(_tensor_value(event).reshape(-1)[0])
            run.scalars[tag] = sorted(values.items())
        elif plugin == "text" and tag == ALARM_TEXT_TAG:
            for event in acc.Tensors(tag):
                raw = _tensor_value(event).reshape(-1)
                text = raw[0] if raw.size else b""
                message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
                run.alarms.append((int(event.step), message))
    fired = set(run.verdict["alarm_steps"])
    run.notes = sorted(a for a in run.alarms if a[0] not in fired)
    run.alarms = sorted(a for a in run.alarms if a[0] in fired)
    run.nonfinite = [s for s, v in run.scalars.get("saliency/nonfinite", []) if v > 0]
    return run


def read_saliency_runs(
    log_dir: str,
    *,
    runs: Sequence[str] | None = None,
    progress: ProgressFactory | None = None,
) -> list[SaliencyRun]:
    """Reads the saliency runs of a log dir, with all their steps.

    A saliency run is any directory under `log_dir` (itself included) whose event files hold
    the image tag `saliency/probes`, as written by `SaliencyCallback`.

    Args:
        log_dir: The TensorBoard log dir.
        runs: Only these runs (paths relative to `log_dir`). Defaults to `None` (all).
        progress: Optional progress factory (one item per run directory read).

    Returns:
        The runs, sorted by name.

    Raises:
        LogDirError: If `log_dir` does not exist, holds no event files, holds no saliency run
            ("foreign log dir"), or a requested run is not among them.

    Examples:
        >>> runs = read_saliency_runs("logs")
        >>> [(r.name, len(r.steps), r.num_probes) for r in runs]
        [('saliency', 20, 8)]
    """
    if not os.path.exists(log_dir):
        raise LogDirError(f"log dir not found: {log_dir}")
    if not os.path.isdir(log_dir):
        raise LogDirError(f"expected a log dir, received a file: {log_dir}")
    dirs = _run_dirs(log_dir)
    if not dirs:
        raise LogDirError(f"empty log dir: no TensorBoard event files under {log_dir}")
    names = {d: os.path.relpath(d, log_dir).replace(os.sep, "/") for d in dirs}
    if runs is not None:
        wanted = {r.strip("/") or "." for r in runs}
        dirs = [d for d in dirs if names[d] in wanted]
        missing = wanted - {names[d] for d in dirs}
        if missing:
            raise LogDirError(
                f"no run {sorted(missing)[0]!r} with event files in {log_dir}; runs: "
                f"{', '.join(sorted(names.values()))}"
            )
    bar = start_progress(progress, "report: reading", len(dirs), "runs")
    found = []
    for i, run_dir in enumerate(dirs):
        try:
            run = _read_run(run_dir, names[run_dir])
        except Exception as err:  # corrupt or unreadable event files
            raise LogDirError(f"cannot read the event files in {run_dir}: {err}") from None
        if run is not None and run.steps:
            found.append(run)
        bar.update(i + 1)
    bar.close()
    if not found:
        raise LogDirError(
            f"foreign log dir: no saliency run in {log_dir} (no event file holds "
            f"'{PROBES_TAG}'; is it a log dir written by SaliencyCallback?)"
        )
    return sorted(found, key=lambda r: r.name)


def select_steps(steps: Sequence[int], max_steps: int | None) -> list[int]:
    """At most `max_steps` of `steps`, evenly spaced, keeping the first and the last.

    Args:
        steps: Ascending steps.
        max_steps: The most to keep, or `None` for all.

    Returns:
        The selected steps, ascending.
    """
    steps = list(steps)
    if max_steps is None or len(steps) <= max_steps:
        return steps
    if max_steps == 1:
        return [steps[-1]]
    index = np.unique(np.round(np.linspace(0, len(steps) - 1, max_steps)).astype(int))
    return [steps[i] for i in index]
