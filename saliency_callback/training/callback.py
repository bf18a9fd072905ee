"""`SaliencyCallback`: saliency overlays of a fixed probe set in TensorBoard, every N epochs.

The callback only wires parts together: `probes` (validated arrays), `engine` (maps), `checks`
(its arguments), `signals` and `background_wiring` (what a logged epoch measures), `alarm_step`
(the alarm's bookkeeping), `captions`, `worker` and `writer` (rendering, TensorBoard).
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

from saliency_callback.data.probes import ObjectRegions, Probes, load_probes
from saliency_callback.maps import inputs as _inputs
from saliency_callback.maps import metrics as _metrics
from saliency_callback.maps.engine import Explainer, Explanation
from saliency_callback.maps.inputs import TargetSpec
from saliency_callback.maps.methods import RECOMMENDED, Method, get_method
from saliency_callback.maps.postprocess import Normalization, Reduction
from saliency_callback.output.timeline import Timeline
from saliency_callback.output.writer import RunWriter, check_log_dir
from saliency_callback.shortcuts.alarm import AlarmEvent, ShortcutAlarm
from saliency_callback.shortcuts.background import BackgroundTest
from saliency_callback.shortcuts.unmeasured import Unmeasured, empty_mask_signals
from saliency_callback.training.alarm_step import AlarmStep
from saliency_callback.training.background_wiring import (
    background_panels,
    background_scalars,
    build_test,
    object_regions,
)
from saliency_callback.training.captions import Captions, describe_run
from saliency_callback.training.checks import (
    check_alarm,
    check_background_tests,
    check_class_count,
    check_class_names,
    check_target,
    is_chief,
)
from saliency_callback.training.epoch_start import EpochStartWatch
from saliency_callback.training.options import Display, Runtime, legacy_options, positive_int
from saliency_callback.training.resume import continue_run, read_history
from saliency_callback.training.signals import Signals, map_scalars
from saliency_callback.training.worker import (
    BACKGROUND_DESCRIPTION,
    StepPayload,
    StepWriter,
    Worker,
)

_NAME = "SaliencyCallback"


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
        self.freq = positive_int(_NAME, "freq", freq)
        self.batch_size = runtime.batch_size
        check_log_dir(log_dir)
        self.renderer = display.renderer()
        self.class_names = check_class_names(class_names)
        check_target(target, self.probes)
        self.background_tests = check_background_tests(background_tests, self.probes)
        self.alarm = check_alarm(alarm, self.probes, self.background_tests)
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
        self._background: BackgroundTest | None = None
        self._regions: ObjectRegions | None = None
        self._epoch_start = EpochStartWatch()
        self._unmeasured = Unmeasured()
        self._display_range: tuple[float, float] | None = None
        self._is_chief = True
        self._alarm_step = AlarmStep()
        self._captions_of: Captions | None = None

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
        names = check_class_count(self.class_names, head.num_classes)
        self._captions_of = Captions(head, names, labels, label_ids, self.target)
        if self.probes.masks is not None:
            self._chance = _metrics.chance_level(self.probes.masks)
        self._background = None
        raw = self.probes.raw
        self._display_range = self.renderer.value_range or (
            (0.0, 255.0) if raw.dtype == np.uint8 else None
        )
        once: list[tuple[str, np.ndarray, str]] = []
        background = None
        if self.background_tests:
            if self._regions is None:  # found once per callback: proposals never see the model
                self._regions = object_regions(self.probes)
            self._background = build_test(
                self.probes, self._regions, label_ids, self._captions_of.name
            )
            once, background = background_panels(
                self.probes, self._regions, self._background, self.renderer, self._display_range
            )
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

    # -- Keras hooks ---------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._finish_pending()  # a reused callback: the previous fit's last step first
        self.alarm_events = []
        self.history = {}
        if self.alarm is not None:
            self.alarm.reset()
        self._alarm_step.reset()
        self._unmeasured.reset(known=empty_mask_signals(self.probes.masks))  # (said in init)
        self._is_chief = is_chief(self.model)
        self._setup()  # errors here are the user's configuration: raise before training
        self._warm_up()
        self._pending_initial_log = self.log_before_training
        self._first_epoch = True
        self._epoch_start.reset()
        self._worker.install_sigint_wait()

    def _warm_up(self) -> None:
        """Runs the compiled functions once on one probe, and has the worker render and encode
        one panel (`Explainer.warm_up`, `StepWriter.warm_up`), before training: the first logged
        epoch then blocks and renders about as long as a later one."""
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
            history = read_history(self.writer.path, panels=self.timeline)
        except Exception as err:
            if self.strict:
                raise
            warnings.warn(f"{_NAME}: reading the run back failed: {err!r}", stacklevel=4)
            return
        if not history.steps:
            return
        self._pending_initial_log = False  # the interrupted run logged the untrained state
        assert self._explainer is not None and self._step_writer is not None
        heads = self._explainer.head.num_classes
        continue_run(history, self.writer, start, self.alarm, heads, self._chance)
        rebuild = self._step_writer.resume_timeline  # the timeline's columns, from their panels
        self._worker.submit(start, functools.partial(rebuild, history.logged_panels()))
        if (start - 1) % self.freq == 0 and start - 1 not in history.steps:
            self._safely(start - 1, None)

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
        if self._background is not None:  # the counterfactual probes, forward
            assert self._regions is not None and self._captions_of is not None
            record = functools.partial(self._record, step=step, logs=logs)
            texts = self._captions_of.prediction_texts
            more, background_captions = background_scalars(
                self._background, self._explainer, self.probes, self._regions, result, record,
                signals, texts,
            )  # fmt: skip
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
        record = functools.partial(self._record, step=step, logs=logs)
        masks, chance = self.probes.masks, self._chance
        return map_scalars(result, self.reduction, self._label_ids, masks, chance, record, signals)

    def _update_alarm(
        self,
        step: int,
        signals: Signals,
        scalars: dict[str, float],
    ) -> str | None:
        """Updates the alarm (synchronously: it may stop training); returns its message."""
        assert self.alarm is not None
        event, message = self._alarm_step.update(
            self.alarm, step, signals, scalars, self._regions_missing
        )
        if event is None:
            return message
        self.alarm_events.append(event)
        warnings.warn(f"{_NAME}: {event.message}", stacklevel=4)
        if self.alarm.stop_training and self.model is not None:
            self.model.stop_training = True
        return message

    # -- captions and descriptions -------------------------------------------------------------

    def _captions(self, result: Explanation) -> list[str]:
        assert self._captions_of is not None
        return self._captions_of.captions(result)

    @functools.cached_property
    def _description(self) -> str:
        return describe_run(
            len(self.probes),
            self.method,
            self.target,
            self.reduction,
            self.normalize,
            self.renderer,
            self.probe_source,
        )
