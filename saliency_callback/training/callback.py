"""`SaliencyCallback`: saliency overlays of a fixed probe set in TensorBoard, every N epochs.

The callback only wires parts together: `probes` (validated arrays), `engine` (maps),
`render` (panels and grid), `metrics` and `alarm` (masks), `writer` (TensorBoard).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from saliency_callback.data.probes import ObjectRegions, Probes, load_probes, locate_objects
from saliency_callback.maps import inputs as _inputs
from saliency_callback.maps import metrics as _metrics
from saliency_callback.maps import postprocess
from saliency_callback.maps.engine import Explainer, Explanation
from saliency_callback.maps.inputs import TargetSpec
from saliency_callback.maps.methods import RECOMMENDED, Method, get_method
from saliency_callback.maps.postprocess import Normalization, Reduction
from saliency_callback.output.box_panels import render_probe_boxes
from saliency_callback.output.timeline import Timeline
from saliency_callback.output.writer import RunWriter, check_log_dir
from saliency_callback.shortcuts import background as _background
from saliency_callback.shortcuts.alarm import MONITORS, AlarmEvent, ShortcutAlarm
from saliency_callback.shortcuts.unmeasured import (
    Unmeasured,
    alarm_cannot_judge,
    empty_mask_signals,
)
from saliency_callback.training.epoch_start import EpochStartWatch
from saliency_callback.training.options import Display, Runtime, legacy_options, positive_int
from saliency_callback.training.resume import read_history, replay_alarm, replay_chances
from saliency_callback.training.worker import (
    BACKGROUND_DESCRIPTION,
    StepPayload,
    StepWriter,
    Worker,
)

_NAME = "SaliencyCallback"
# Background signals that also go into Keras's `logs` (CSVLogger, History, EarlyStopping).
_LOGGED_BACKGROUND = (
    "gap",
    "flip_rate",
    "reliance",
    "swap_change",
    "only_bg_accuracy",
    "harm",
    "harm_low",
    "harm_high",
)
Signals = dict[str, tuple[float, np.ndarray | None, float | None]]
"""What the alarm can watch: signal -> (mean, per-probe values or None, chance level or None)."""


def _positive_int(name: str, value: Any) -> int:
    return positive_int(_NAME, name, value)


def _is_chief(model: Any) -> bool:
    """Whether this process should write (always, unless a non-chief multi-worker task)."""
    strategy = getattr(model, "distribute_strategy", None)
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    try:
        in_multi_worker = strategy.extended._in_multi_worker_mode()  # type: ignore[union-attr]
    except AttributeError:
        return True
    if not in_multi_worker:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


class SaliencyCallback(keras.callbacks.Callback):
    """Logs saliency maps of a fixed probe set to TensorBoard every `freq` epochs.

    At each logged epoch the callback computes a saliency map for every probe image (one
    compiled, batched gradient computation), smooths it with a Gaussian, and writes under the
    run `log_dir/<run_name>` (next to the `train` and `validation` runs of Keras's
    `TensorBoard` callback, with the same step numbers: step `e` is the end of epoch `e`):

    - `saliency/overview`: one image with every probe's panel (image | saliency | overlay);
    - `saliency/probes`: one sample per probe (the sample slider picks the probe, the step
      slider shows its evolution);
    - scalars `saliency/confidence` (mean model output for each probe's explained class) and
      `saliency/confidence/probe_XX`, `saliency/probe_accuracy` when class labels are given,
      and with `masks`: `saliency/mass_in_mask` (mean fraction of saliency mass inside the
      masks) with `saliency/mass_in_mask/probe_XX`, `saliency/pointing_game`,
      `saliency/rank_in_mask` and `saliency/mass_in_mask_chance` (the masks' area fraction).
      The means are also added to Keras's `logs` as `saliency_mass_in_mask`, ... so
      `CSVLogger`, `History` and `EarlyStopping` see them (on logged epochs);
    - with an `alarm`: the scalar `saliency/alarm` (1 when the alarm fires, 0 when it judged
      the epoch clear; not written where it cannot judge, e.g. a harm resting on fewer than 2
      probes), `saliency/alarm_limit/<signal>` (the threshold at that epoch, on the watched
      signal) and the text `saliency/alarm_message` explaining it; `saliency/nonfinite` marks
      epochs whose outputs were NaN/inf (their images are skipped).

    A scalar that cannot be measured at an epoch (NaN or inf) is not written at that epoch, to
    TensorBoard or to Keras's `logs`; a warning says which and why, once per fit
    (`saliency_callback.shortcuts.unmeasured`).

    Each panel carries its caption in the pixels (TensorBoard cannot caption images): probe
    index, true label, predicted class and confidence. Method and parameters are in the
    summary's Markdown description. TensorBoard keeps only 10 steps per image tag unless
    started with `--samples_per_plugin images=N`, but always the latest: `saliency/timeline`
    shows every probe (rows) at up to 12 logged epochs so far (columns), so the latest step
    holds the history.

    Only what needs the model runs on the training thread at the epoch end (the gradients, the
    background tests' forward pass, the scalar values, Keras's `logs`, the alarm); rendering,
    PNG encoding and writing run on one background thread, at most one logged step behind
    (`Runtime.background_writer`). A `fit` that resumes at epoch `e > 0` (e.g. with
    `keras.callbacks.BackupAndRestore`) continues the run: see `saliency_callback.training.resume`.

    The callback never changes training: it calls the model with `training=False`, never
    mutates it, uses no global random state, and overrides no per-batch hook but
    `on_train_batch_begin`, which keeps Keras's asynchronous dispatch (only batch *end* hooks
    turn it off) and after each epoch's first batch is one attribute test: it notices an epoch
    whose first batch waited with the process idle (`saliency_callback.training.epoch_start`).
    An error during an epoch's saliency work is reported as a warning and training continues
    (`Runtime(strict=True)` re-raises).

    The constructor takes what a user decides per callback: the probes (`images`, `labels`,
    `masks` or `boxes`, `class_names`, `num_probes`), where and when to log (`log_dir`,
    `freq`), what to explain (`method`, `target`, `output`) and which tests to run
    (`background_tests`, `alarm`). Everything else sits on two objects built once and reusable
    across callbacks, as Keras does with optimizers: `Display` (how maps become pictures and
    which pictures are written) and `Runtime` (batch size, background thread, byte cap, the
    pre-training log, the run's directory name, strictness). The keywords these objects
    replaced (`sigma=`, `batch_size=`, `alarm_threshold=`, ...) still work for one release,
    with a `DeprecationWarning` naming the new spelling.

    Args:
        images: Probe images `(N, H, W, C)` or `(N, H, W)`, numpy or tensor, uint8 or float in
            the model's input range; or a `tf.data.Dataset` yielding images or
            `(images, labels[, masks])` (batched or not), of which the first `num_probes`
            examples are taken once.
        labels: True labels `(N,)` or one-hot `(N, K)`, or values for a regression model.
            Defaults to `None`.
        masks: Foreground masks `(N, H, W)`, bool or 0/1. Defaults to `None`.
        boxes: Instead of `masks`, `(N, 4)` pixel boxes `(x0, y0, x1, y1)` (end excluded).
            Defaults to `None`.
        class_names: Names of the classes, used in captions. Defaults to `None`.
        num_probes: How many probes to take (the first ones). Defaults to `None`: all of an
            array, 16 from a dataset.
        log_dir: TensorBoard log directory (the run is written to `log_dir/saliency`, see
            `Runtime.run_name`). Defaults to `"logs"`.
        freq: Log every `freq` epochs (epochs `0, freq, 2*freq, ...` and always the last one).
            Defaults to `1`.
        method: `"vanilla"`, `"smoothgrad"`, `"integrated_gradients"`, `"gradcam"` or a
            `Method` such as `SmoothGrad(IntegratedGradients(steps=16))`. Defaults to
            `SmoothGrad(Vanilla(), n_samples=10)` (`methods.RECOMMENDED`, chosen by the
            detection benchmark; about 10x the cost of `"vanilla"`).
        target: `"predicted"`, `"label"`, an int, one int per probe, or a callable from
            pre-activation outputs to one score per image. Defaults to `"predicted"`.
        output: Output name or index for models with several outputs. Defaults to `None`.
        background_tests: Swap the probes' backgrounds every logged epoch (see
            `saliency_callback.shortcuts.background`) and log `saliency/background/*`: accuracy,
            only_fg/only_bg/mixed_rand/mixed_same accuracy, `gap` (accuracy minus mixed_rand
            accuracy), `flip_rate` (swaps that change the prediction; no labels needed), and
            the image `saliency/background` (original | only_fg | only_bg | mixed_rand).
            `gap`, `flip_rate`, `reliance`, `harm`, `harm_low` and `harm_high` (the accuracy
            the model is estimated to lose where the background disagrees, with its bounds,
            see `saliency_callback.shortcuts.calibration`) also go into Keras's `logs`. Defaults to
            `None`: on. Without `masks` or `boxes` the tests use object boxes proposed once
            from the probe images (never from the model; `saliency_callback.shortcuts.proposals`,
            docs/mask-free.md), shown in the image `saliency/probe_boxes`, with
            `saliency/background/proposed_boxes` = 1; probes without a plausible object are
            left out, with one warning.
        alarm: A `ShortcutAlarm` watching any logged signal (harm, reliance, mass in mask,
            background gap, flip rate, ...). Defaults to `None`.
        display: A `Display`: smoothing, colormap, opacity, tile sizes, value range, channel
            reduction and normalisation, and whether the overview and timeline are written.
            Defaults to `Display()`.
        runtime: A `Runtime`: batch size, background writer thread, PNG byte cap per step,
            `log_before_training`, `run_name`, `strict`. Defaults to `Runtime()`.
        **legacy: The former keywords (`sigma`, `colormap`, `alpha`, `min_tile`, `max_tile`,
            `value_range`, `overview`, `timeline`, `overview_pixels`, `reduction`,
            `normalize`, `percentile`; `batch_size`, `background_writer`, `max_step_bytes`,
            `log_before_training`, `run_name`, `strict`; `alarm_threshold`, `alarm_relative`,
            `patience`, `stop_training`): deprecated, mapped onto `display`, `runtime` and
            `alarm` with a `DeprecationWarning`.

    Attributes:
        probes: The validated probe set (`images`, `labels`, `masks`, and `raw` for display).
        history: `{"mass_in_mask": [(step, mean), ...], "pointing_game": ..., ...}` of the
            current `fit` (with masks).
        alarm_events: The `AlarmEvent`s of the current `fit`.

    Raises:
        TypeError, ValueError: In `__init__` for bad arguments, and in `on_train_begin` for
            probes that do not fit the model, naming the argument and the received value.

    Example:
    ```python
    import saliency_callback as sc

    cb = sc.SaliencyCallback(
        probe_images, labels=probe_labels, masks=probe_masks,   # a few validation images
        class_names=["cat", "dog"], log_dir="logs",
        alarm=sc.ShortcutAlarm(),                 # warn when the background decides
        display=sc.Display(sigma=2.0),            # optional: how the maps look
    )
    model.fit(x, y, epochs=20, callbacks=[cb, keras.callbacks.TensorBoard("logs")])
    # then: tensorboard --logdir logs --samples_per_plugin images=100
    ```
    """

    probe_source: str | None = None
    """Where the probes came from (set by `from_probe_file`), shown in the summary description."""

    @classmethod
    def from_probe_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> SaliencyCallback:
        """A callback on the probes of a probe file (written by `saliency-callback annotate`).

        Skipped probes are left out; drawn, corrected and proposed masks are all used, and how
        many of each there are goes into the summary description (`probe_source`).

        Args:
            path: The `.npz` probe file (see `saliency_callback.data.probe_file`).
            **kwargs: Any other argument of `SaliencyCallback` (`log_dir`, `method`, ...);
                `class_names` replaces the file's.

        Raises:
            saliency_callback.data.probe_file.ProbeFileError: For a missing or bad file.
            TypeError: If `kwargs` holds `images`, `labels`, `masks` or `boxes`.

        Example:
        ```python
        cb = SaliencyCallback.from_probe_file("probes.npz", log_dir="logs")
        ```
        """
        from saliency_callback.data.probe_file import read_probe_file

        taken = sorted({"images", "labels", "masks", "boxes"} & set(kwargs))
        if taken:
            raise TypeError(
                f"`from_probe_file` takes the probes from the file; received {', '.join(taken)}"
            )
        probes = read_probe_file(path)
        arrays = probes.for_callback()
        kwargs.setdefault("class_names", arrays["class_names"])
        callback = cls(arrays["images"], arrays["labels"], arrays["masks"], **kwargs)
        callback.probe_source = probes.describe(os.fspath(path))
        return callback

    def __init__(
        self,
        images: Any,
        labels: Any = None,
        masks: Any = None,
        *,
        boxes: Any = None,
        class_names: Sequence[str] | None = None,
        num_probes: int | None = None,
        log_dir: str = "logs",
        freq: int = 1,
        method: str | Method = RECOMMENDED,
        target: TargetSpec = "predicted",
        output: int | str | None = None,
        background_tests: bool | None = None,
        alarm: ShortcutAlarm | None = None,
        display: Display | None = None,
        runtime: Runtime | None = None,
        **legacy: Any,
    ) -> None:
        super().__init__()
        display, runtime, alarm = legacy_options(_NAME, legacy, display, runtime, alarm)
        self.display = display
        self.runtime = runtime
        self.probes: Probes = load_probes(images, labels, masks, num_probes, boxes=boxes)
        self.method = get_method(method)
        self.freq = _positive_int("freq", freq)
        self.batch_size = runtime.batch_size
        check_log_dir(log_dir)
        self.renderer = display.renderer()
        self.class_names = self._check_class_names(class_names)
        if isinstance(target, str) and target == "label" and self.probes.labels is None:
            raise ValueError(f'`{_NAME}` got target="label" but no `labels`; received labels=None')
        if not callable(target) and not isinstance(target, (str, int, np.integer)):
            _inputs.resolve_targets(target, len(self.probes), None, None)
        self.background_tests = self._check_background_tests(background_tests)
        self.alarm = self._check_alarm(alarm)
        self.target = target
        self.log_dir = log_dir
        self.output = output
        self.reduction: Reduction = display.reduction
        self.normalize: Normalization = display.normalize
        self.percentile = display.percentile
        self.log_before_training = runtime.log_before_training
        self.overview = display.overview
        self.strict = runtime.strict
        self.overview_pixels = display.overview_pixels
        self.max_step_bytes = runtime.max_step_bytes
        self.timeline = display.timeline
        self.writer = RunWriter(log_dir, runtime.run_name)
        self._worker = Worker(runtime.background_writer)
        self._step_writer: StepWriter | None = None
        self.alarm_events: list[AlarmEvent] = []
        self.history: dict[str, list[tuple[int, float]]] = {}
        self._explainer: Explainer | None = None
        self._prepared: tuple[np.ndarray, np.ndarray] | None = None
        self._pending_initial_log = False
        self._chance: np.ndarray | None = None
        self._label_ids: np.ndarray | None = None
        self._background: _background.BackgroundTest | None = None
        self._regions: ObjectRegions | None = None
        self._epoch_start = EpochStartWatch()
        self._unmeasured = Unmeasured()
        self._display_range: tuple[float, float] | None = None
        self._is_chief = True

    # -- validation ----------------------------------------------------------------------------

    def _check_class_names(self, class_names: Sequence[str] | None) -> list[str] | None:
        if class_names is None:
            return None
        if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
            raise TypeError(
                f"`{_NAME}` expected `class_names` to be a sequence of str, received "
                f"{class_names!r}"
            )
        return list(class_names)

    def _check_background_tests(self, background_tests: bool | None) -> bool:
        if background_tests is not None and not isinstance(background_tests, (bool, np.bool_)):
            raise TypeError(
                f"`{_NAME}` expected `background_tests` to be a bool or None, received "
                f"{background_tests!r}"
            )
        masks = self.probes.masks
        # Without masks or boxes the tests run on object boxes proposed from the images at
        # `on_train_begin` (`probes.locate_objects`).
        enabled = True if background_tests is None else bool(background_tests)
        if enabled and masks is not None:
            area = masks.mean(axis=(1, 2))
            left_out = [int(i) for i in np.flatnonzero((area == 0) | (area == 1))]
            if left_out:
                warnings.warn(
                    f"{_NAME}: probes {left_out} have an empty mask or one covering the whole "
                    "image; they are left out of the background tests (and of the mask "
                    "metrics where empty).",
                    stacklevel=3,
                )
        return enabled

    def _check_alarm(self, alarm: ShortcutAlarm | None) -> ShortcutAlarm | None:
        if alarm is None:
            return None
        if not isinstance(alarm, ShortcutAlarm):
            raise TypeError(f"`{_NAME}` expected `alarm` to be a ShortcutAlarm, received {alarm!r}")
        background_monitor = alarm.monitor.startswith("background/")
        if alarm.needs_masks and self.probes.masks is None and not background_monitor:
            raise ValueError(
                f"`{_NAME}` got an alarm on {alarm.monitor!r}, which needs `masks` or `boxes`; "
                "received neither (proposed object boxes serve the background tests only)"
            )
        if alarm.monitor.startswith("background/") and not self.background_tests:
            raise ValueError(
                f"`{_NAME}` got an alarm on {alarm.monitor!r} with background_tests=False"
            )
        accuracy = alarm.monitor.endswith("accuracy") or alarm.monitor == "background/gap"
        if accuracy and self.probes.labels is None:
            raise ValueError(
                f"`{_NAME}` got an alarm on {alarm.monitor!r}, which needs `labels`; received "
                "labels=None (background/flip_rate needs no labels)"
            )
        return alarm

    def _setup(self) -> None:
        """Builds the explainer for the current model and validates the probes against it."""
        model = self.model
        if self._explainer is None or self._explainer.model is not model:
            self._explainer = Explainer(
                model,
                self.method,
                target=self.target,
                output=self.output,
                batch_size=self.batch_size,
                reduction=self.reduction,
                normalize=self.normalize,
                percentile=self.percentile,
            )
        explainer = self._explainer
        head = explainer.head
        labels = self.probes.labels
        label_ids = None
        if labels is not None and head.num_classes is not None:
            label_ids = _inputs.check_labels(labels, len(self.probes), head.num_classes)
        self._label_ids = label_ids
        self._prepared = explainer.prepare(self.probes.images, label_ids)
        n_classes = head.num_classes
        names = self.class_names
        if names is not None and n_classes is not None and len(names) != n_classes:
            raise ValueError(
                f"expected `class_names` of length {n_classes} (the model's classes), "
                f"received {len(names)}"
            )
        if self.probes.masks is not None:
            self._chance = _metrics.chance_level(self.probes.masks)
        self._background = None
        once = []
        raw = self.probes.raw
        self._display_range = self.renderer.value_range or (
            (0.0, 255.0) if raw.dtype == np.uint8 else None
        )
        if self.background_tests:
            regions = self._object_regions()
            if regions.usable.any():
                self._background = _background.BackgroundTest.build(
                    self.probes.images, regions.masks, label_ids
                )
                self._warn_single_class(self._background.valid, label_ids)
            r = self.renderer
            boxes = render_probe_boxes(
                raw,
                regions,
                value_range=self._display_range,
                min_tile=r.min_tile,
                max_tile=r.max_tile,
            )
            once.append(("saliency/probe_boxes", boxes, regions.describe()))
        background = None
        if self._background is not None:
            test = self._background
            stacks = [
                self.probes.images,
                *(test.images[v] for v in ("only_fg", "only_bg", "mixed_rand")),
            ]
            background = (stacks, self._display_range)
        self._step_writer = StepWriter(
            self.writer,
            self.renderer,
            self.probes.raw,
            self._description,
            overview=self.overview,
            overview_pixels=self.overview_pixels,
            max_step_bytes=self.max_step_bytes,
            timeline=Timeline(pixel_budget=self.overview_pixels) if self.timeline else None,
            background=background,
            background_description=BACKGROUND_DESCRIPTION
            + ("" if self._regions is None else " " + self._regions.describe()),
            once=once,
        )

    @property
    def _regions_missing(self) -> bool:
        """Whether the background tests are on but no probe has a plausible object."""
        return self.background_tests and self._regions is not None and self._background is None

    def _object_regions(self) -> ObjectRegions:
        """The probes' object regions, found once per callback (proposals never look at the
        model); warns once about probes without a plausible one."""
        if self._regions is not None:
            return self._regions
        regions = self._regions = locate_objects(self.probes)
        message = regions.warning()
        if message is not None:
            warnings.warn(f"{_NAME}: {message}", stacklevel=4)
        return regions

    def _warn_single_class(self, valid: np.ndarray, label_ids: np.ndarray | None) -> None:
        """Warns when every probe in the background tests has one class (no swap partners)."""
        taking_part = np.unique(label_ids[valid]) if label_ids is not None else np.zeros(0)
        if len(taking_part) == 1:
            warnings.warn(
                f"{_NAME}: every probe in the background tests has class "
                f"{self._name(int(taking_part[0]))}; swapping backgrounds within one class "
                "cannot show whether the model reads the background, so flip_rate, reliance "
                "and gap are not measured (not logged). Add probes of other classes.",
                stacklevel=4,
            )

    # -- Keras hooks ---------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._finish_pending()  # a reused callback: the previous fit's last step first
        self.alarm_events = []
        self.history = {}
        if self.alarm is not None:
            self.alarm.reset()
        self._alarm_warned_missing = False
        self._unmeasured.reset(known=empty_mask_signals(self.probes.masks))  # (said in init)
        self._is_chief = _is_chief(self.model)
        self._setup()  # errors here are the user's configuration: raise before training
        self._warm_up()
        self._pending_initial_log = self.log_before_training
        self._first_epoch = True
        self._epoch_start.reset()
        self._worker.install_sigint_wait()

    def _warm_up(self) -> None:
        """Traces and runs the compiled functions once on one probe before training, and hands
        the worker a first job that renders and encodes one panel (`Explainer.warm_up`,
        `StepWriter.warm_up`): the first logged epoch then blocks about as long as a later one,
        and its step is rendered without first-time costs."""
        if not self._is_chief or self._explainer is None or self._prepared is None:
            return
        try:
            self._explainer.warm_up(*self._prepared)
            if self._step_writer is not None:  # where the steps are rendered (the worker)
                self._worker.submit(-1, self._step_writer.warm_up)
        except Exception:  # the epoch end meets the same error and reports it (a warning)
            if self.strict:
                raise

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._report(stacklevel=3)
        if self._first_epoch:
            self._first_epoch = False
            if epoch > 0 and self._is_chief:
                self._resume(epoch)
        if self._pending_initial_log:
            self._pending_initial_log = False
            self._safely(epoch - 1, None, initial=True)
        self._epoch_start.epoch_begin(epoch)  # after the callback's own work

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # A begin hook keeps Keras's asynchronous dispatch (only end hooks turn it off); after
        # each epoch's first batch this is one attribute test.
        if self._epoch_start.pending:
            message = self._epoch_start.first_batch()
            if message is not None:
                warnings.warn(f"{_NAME}: {message}", stacklevel=3)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._report(stacklevel=3)
        last = self.params.get("epochs") if self.params else None
        if epoch % self.freq == 0 or (last is not None and epoch == last - 1):
            self._safely(epoch, logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._worker.remove_sigint_wait()
        self._finish_pending()

    def _resume(self, start: int) -> None:
        """A fit starting at epoch `start > 0` (e.g. `BackupAndRestore`): see `resume`."""
        try:
            history = read_history(self.writer.path)
        except Exception as err:
            if self.strict:
                raise
            warnings.warn(f"{_NAME}: reading the run back failed: {err!r}", stacklevel=4)
            return
        if not history.steps:
            return
        self._pending_initial_log = False  # the interrupted run logged the untrained state
        previous = start - 1  # the restored weights are those after epoch start-1
        cut = previous if previous in history.steps - history.complete else start
        if max(history.steps) >= cut:  # after the last backup, or cut short: discarded
            self.writer.restart(cut, twice=not history.started)  # the worker is idle here
            history.purge_from(cut)
        if self.alarm is not None:
            assert self._explainer is not None
            chances = replay_chances(
                self.alarm.monitor, history, self._explainer.head.num_classes, self._chance
            )
            replay_alarm(self.alarm, history, start, chances)
        if previous % self.freq == 0 and previous not in history.steps:
            self._safely(previous, None)

    def flush(self) -> None:
        """Waits until the pending logged step (if any) is written and the event file flushed.

        With `background_writer=True` a logged step is written on a background thread after
        `on_epoch_end` returns; `on_train_end` calls this. Errors are reported here.
        """
        self._worker.wait()
        self._report(stacklevel=3)

    def _finish_pending(self) -> None:
        """Waits for the pending step, reports the worker's errors, closes the event file."""
        self._worker.close()
        self._report(stacklevel=4)
        try:
            self.writer.close()
        except Exception as err:
            if self.strict:
                raise
            warnings.warn(f"{_NAME}: closing the event file failed: {err!r}", stacklevel=3)

    def _report(self, stacklevel: int = 2) -> None:
        """Emits the worker's warnings; with `strict=True` raises its first error."""
        for message, err in self._worker.take():
            if err is not None and self.strict:
                raise err
            warnings.warn(f"{_NAME}: {message}", stacklevel=stacklevel)

    # -- the epoch's work ----------------------------------------------------------------------

    def _safely(self, step: int, logs: dict[str, Any] | None, initial: bool = False) -> None:
        if not self._is_chief:
            return
        try:
            self.log_step(step, logs, initial=initial)
        except Exception as err:
            if self.strict:
                raise
            warnings.warn(
                f"{_NAME}: saliency at epoch {step} failed and was skipped; training continues. "
                f"{type(err).__name__}: {err}",
                stacklevel=2,
            )
        if not self._worker.background:
            self._report(stacklevel=4)

    def log_step(
        self, step: int, logs: dict[str, Any] | None = None, initial: bool = False
    ) -> Explanation | None:
        """Computes, renders and writes the saliency of the probes at `step`.

        Args:
            step: The TensorBoard step (the epoch index).
            logs: Keras's epoch logs, which receive the mask metrics' means.
            initial: Whether this is the pre-training log, which the alarm ignores (an untrained
                model looks anywhere).

        Returns:
            The `Explanation`, or `None` when the model's outputs were not finite.
        """
        if self._explainer is None or self._prepared is None or self._step_writer is None:
            raise RuntimeError(f"{_NAME}.log_step needs a model: call it during `fit`.")
        x, targets = self._prepared
        _ = self.model  # on JAX, `Callback.model` attaches the trainer's state to the variables
        result = self._explainer.explain_prepared(x, targets)
        if not (np.isfinite(result.logits).all() and np.isfinite(result.attributions).all()):
            warnings.warn(
                f"{_NAME}: at epoch {step} the model's outputs or gradients are NaN/inf (has "
                "training diverged?); this epoch's saliency images are skipped, training "
                "continues.",
                stacklevel=3,
            )
            self._submit(StepPayload(step, {"saliency/nonfinite": 1.0}))
            return None
        captions = self._captions(result)
        signals: Signals = {}
        scalars = self._scalars(result, step, logs, signals)
        background_captions = None
        if self._background is not None:
            more, background_captions = self._background_step(result, step, logs, signals)
            scalars.update(more)
        message = None
        if self.alarm is not None and not initial:
            message = self._update_alarm(step, signals, scalars)
        labelled = self._label_ids is not None
        scalars, why = self._unmeasured.keep(step, scalars, len(self.probes), labelled)
        if why is not None:  # NaN/inf is never written; which and why, once per fit
            warnings.warn(f"{_NAME}: {why}", stacklevel=3)
        self._submit(
            StepPayload(step, scalars, result.maps, captions, background_captions, message)
        )
        return result

    def _submit(self, payload: StepPayload) -> None:
        """Hands the step's rendering and writing to the worker (or does it inline)."""
        step_writer = self._step_writer
        assert step_writer is not None
        self._worker.submit(payload.step, functools.partial(step_writer.write, payload))

    def _record(
        self, name: str, mean: float, step: int, logs: dict[str, Any] | None, to_logs: bool = True
    ) -> None:
        self.history.setdefault(name, []).append((step, mean))
        if logs is not None and to_logs and math.isfinite(mean):  # never NaN in Keras's logs
            logs["saliency_" + name.replace("/", "_")] = mean

    def _scalars(
        self,
        result: Explanation,
        step: int,
        logs: dict[str, Any] | None,
        signals: Signals,
    ) -> dict[str, float]:
        conf = result.confidence
        scalars: dict[str, float] = {"saliency/confidence": float(conf.mean())}
        for i, c in enumerate(conf):
            scalars[f"saliency/confidence/probe_{i:02d}"] = float(c)
        if self._label_ids is not None:
            predicted = self._predicted(result)
            accuracy = float((predicted == self._label_ids).mean())
            scalars["saliency/probe_accuracy"] = accuracy
            signals["probe_accuracy"] = (accuracy, None, 1.0 / max(result.outputs.shape[1], 2))
        raw = result.reduced
        if raw is None:
            raw = postprocess.reduce_channels(result.attributions, self.reduction)
        score, chance = _metrics.hotspot(raw)
        scalars["saliency/hotspot"], scalars["saliency/hotspot_chance"] = score, chance
        signals["hotspot"] = (score, None, chance)
        self._record("hotspot", score, step, logs)
        masks = self.probes.masks
        if masks is not None:
            values = {
                "mass_in_mask": _metrics.mass_in_mask(raw, masks),
                "pointing_game": _metrics.pointing_game(raw, masks),
                "rank_in_mask": _metrics.rank_in_mask(raw, masks),
            }
            assert self._chance is not None
            for name, per_probe in values.items():
                valid = np.isfinite(per_probe)
                mean = float(per_probe[valid].mean()) if valid.any() else np.nan
                chance = float(self._chance[valid].mean()) if valid.any() else np.nan
                scalars[f"saliency/{name}"] = mean
                signals[name] = (mean, per_probe, chance)
                self._record(name, mean, step, logs)
            for i, m in enumerate(values["mass_in_mask"]):
                scalars[f"saliency/mass_in_mask/probe_{i:02d}"] = float(m)
            measured = np.isfinite(self._chance)  # (every mask empty: NaN, without a warning)
            area = float(self._chance[measured].mean()) if measured.any() else np.nan
            scalars["saliency/mass_in_mask_chance"] = area
        return scalars

    def _background_step(
        self,
        result: Explanation,
        step: int,
        logs: dict[str, Any] | None,
        signals: Signals,
    ) -> tuple[dict[str, float], list[list[str]]]:
        """Runs the counterfactual probes forward; returns their scalars and panel captions."""
        test = self._background
        assert test is not None and self._explainer is not None
        _, outputs = self._explainer.predict(test.batch)
        variants = test.split(outputs)
        head = self._explainer.head
        regression = head.num_classes is None
        targets = self.probes.labels if regression else None
        values, per_probe = _background.score(
            test, result.outputs, variants, regression=regression, targets=targets
        )
        assert self._regions is not None
        proposed = float(self._regions.source == "proposed")
        chance = values.get("only_bg_chance")
        per_probe_signal = per_probe.get("flip", per_probe.get("change"))
        scalars: dict[str, float] = {"saliency/background/proposed_boxes": proposed}
        for name, value in values.items():
            key = f"background/{name}"
            scalars[f"saliency/{key}"] = value
            if name == "only_bg_chance":
                continue
            has_chance = MONITORS.get(key, ("", None))[1] is not None
            per = per_probe.get("harm") if name.startswith("harm") else per_probe_signal
            signals[key] = (value, per, chance if has_chance else None)
            self._record(key, value, step, logs, name in _LOGGED_BACKGROUND)
        outs = [result.outputs] + [variants[v] for v in ("only_fg", "only_bg", "mixed_rand")]
        return scalars, [self._prediction_texts(o) for o in outs]

    def _update_alarm(
        self,
        step: int,
        signals: Signals,
        scalars: dict[str, float],
    ) -> str | None:
        """Updates the alarm (synchronously: it may stop training); returns its message."""
        assert self.alarm is not None
        signal = signals.get(self.alarm.monitor)
        background_monitor = self.alarm.monitor.startswith("background/")
        if signal is None and background_monitor and self._regions_missing:
            return (  # `saliency/alarm` is not written: the alarm did not judge this epoch
                f"Shortcut alarm could not run: {self.alarm.monitor} needs the background "
                "tests, and no plausible object was found in any probe image. Pass "
                "`boxes=` or `masks=` to watch for background shortcuts."
            )
        if signal is None:  # e.g. a background accuracy of a regression model: never logged
            if not self._alarm_warned_missing:
                self._alarm_warned_missing = True
                warnings.warn(
                    f"{_NAME}: the alarm watches {self.alarm.monitor!r}, which is not measured "
                    f"for this model and probe set (at epoch {step} it logs "
                    f"{sorted(signals)}); the alarm cannot fire",
                    stacklevel=4,
                )
            return None
        context = {name: value for name, (value, _, _) in signals.items()}
        # Cannot tell (e.g. a harm resting on fewer than 2 probes): the step is not judged, and
        # `saliency/alarm` is not written there (neither 0 nor NaN; see `unmeasured`).
        judged = not alarm_cannot_judge(self.alarm.monitor, context)
        event = None
        if judged and self.alarm.monitor.startswith("background/harm"):  # quotes the bounds
            event = self.alarm.update(step, *signal, context=context)
        elif judged:
            event = self.alarm.update(step, *signal)
        # The threshold at this step, on the watched signal (the dashboard draws it).
        limit = scalars[f"saliency/alarm_limit/{self.alarm.monitor}"] = self.alarm.limit(signal[2])
        if judged and math.isfinite(limit):  # (an unknown chance level: not judged either)
            scalars["saliency/alarm"] = float(event is not None)
        if event is None:
            return None
        self.alarm_events.append(event)
        warnings.warn(f"{_NAME}: {event.message}", stacklevel=4)
        if self.alarm.stop_training and self.model is not None:
            self.model.stop_training = True
        return event.message

    # -- captions and descriptions -------------------------------------------------------------

    def _predicted(self, result: Explanation) -> np.ndarray:
        return _background.predicted_classes(result.outputs)

    def _name(self, c: int) -> str:
        if self.class_names is not None and 0 <= c < len(self.class_names):
            return self.class_names[c]
        return str(c)

    def _prediction_texts(self, outputs: np.ndarray) -> list[str]:
        """`"<class> <confidence>"` per row of model outputs (the value for regression)."""
        assert self._explainer is not None
        head = self._explainer.head
        if head.num_classes is None or not head.exact:  # regression or unknown head
            return [f"{float(o):.3g}" for o in outputs[:, 0]]
        predicted = _background.predicted_classes(outputs)
        if outputs.shape[1] == 1:
            conf = np.where(predicted == 1, outputs[:, 0], 1.0 - outputs[:, 0])
        else:
            conf = outputs[np.arange(len(outputs)), predicted]
        return [
            f"{self._name(int(p))} {float(c):.0%}" for p, c in zip(predicted, conf, strict=True)
        ]

    def _captions(self, result: Explanation) -> list[str]:
        assert self._explainer is not None
        head = self._explainer.head
        labels = self.probes.labels
        texts = self._prediction_texts(result.outputs)
        if head.num_classes is None or not head.exact:  # regression or unknown head
            return [
                f"#{i}{f' y={float(np.ravel(labels[i])[0]):.3g}' if labels is not None else ''}"
                f" pred={text}"
                for i, text in enumerate(texts)
            ]
        captions = []
        predicted = self._predicted(result)
        for i, text in enumerate(texts):
            truth = ""
            if self._label_ids is not None:
                truth = f" y={self._name(int(self._label_ids[i]))}"
            caption = f"#{i}{truth} pred={text}"
            if int(result.targets[i]) != int(predicted[i]) and not callable(self.target):
                caption += f" map={self._name(int(result.targets[i]))}"
            captions.append(caption)
        return captions

    @functools.cached_property
    def _description(self) -> str:
        target = getattr(self.target, "__name__", None) if callable(self.target) else None
        target_text = f"callable `{target}`" if target else f"`{self.target!r}`"
        r = self.renderer
        return (
            f"Saliency of {len(self.probes)} probes. Method: `{self.method.describe()}`; "
            f"target: {target_text}; reduction: `{self.reduction}`; normalize: "
            f"`{self.normalize}`; Gaussian sigma: {r.sigma:g} px; colormap: `{r.colormap}`; "
            f"alpha: {r.alpha:g}.\n\nEach panel: **image | saliency | overlay**. Caption: "
            "probe index, true label `y`, predicted class and confidence (and `map=` the "
            "explained class when it differs from the prediction)."
            + (f"\n\nProbes from {self.probe_source}." if self.probe_source else "")
        )
