"""`SaliencyCallback`: saliency overlays of a fixed probe set in TensorBoard, every N epochs.

The callback only wires parts together: `probes` (validated arrays), `engine` (maps),
`render` (panels and grid), `metrics` and `alarm` (masks), `writer` (TensorBoard).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from saliency_callback import inputs as _inputs
from saliency_callback import metrics as _metrics
from saliency_callback import postprocess
from saliency_callback.alarm import AlarmEvent, ShortcutAlarm
from saliency_callback.engine import Explainer, Explanation
from saliency_callback.inputs import TargetSpec
from saliency_callback.methods import Method, get_method
from saliency_callback.postprocess import Normalization, Reduction
from saliency_callback.probes import Probes, load_probes
from saliency_callback.render import Renderer
from saliency_callback.writer import RunWriter, check_log_dir

_NAME = "SaliencyCallback"


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{_NAME}` expected `{name}` to be an int, received {name}={value!r}")
    if value < 1:
        raise ValueError(
            f"`{_NAME}` expected `{name}` to be a positive integer, received {name}={value}"
        )
    return int(value)


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
    - with `alarm_threshold`: the scalar `saliency/alarm` (1 when the alarm fires, else 0) and
      the text `saliency/alarm_message` explaining it; `saliency/nonfinite` marks epochs whose
      outputs were NaN/inf (their images are skipped).

    Each panel carries its caption in the pixels (TensorBoard cannot caption images): probe
    index, true label, predicted class and confidence. Method and parameters are in the
    summary's Markdown description. TensorBoard keeps only 10 steps per image tag unless
    started with `--samples_per_plugin images=N`.

    The callback never changes training: it calls the model with `training=False`, never
    mutates it, uses no global random state, and overrides no per-batch hook. An error during
    an epoch's saliency work is reported as a warning and training continues
    (`strict=True` re-raises).

    Args:
        images: Probe images `(N, H, W, C)` or `(N, H, W)`, numpy or tensor, uint8 or float in
            the model's input range; or a `tf.data.Dataset` yielding images or
            `(images, labels[, masks])` (batched or not), of which the first `num_probes`
            examples are taken once.
        labels: True labels `(N,)` or one-hot `(N, K)`, or values for a regression model.
            Defaults to `None`.
        masks: Foreground masks `(N, H, W)`, bool or 0/1. Defaults to `None`.
        log_dir: TensorBoard log directory. Defaults to `"logs"`.
        method: `"vanilla"`, `"smoothgrad"`, `"integrated_gradients"`, `"gradcam"` or a
            `Method` such as `SmoothGrad(IntegratedGradients(steps=16))`. Defaults to
            `"vanilla"`.
        target: `"predicted"`, `"label"`, an int, one int per probe, or a callable from
            pre-activation outputs to one score per image. Defaults to `"predicted"`.
        freq: Log every `freq` epochs (epochs `0, freq, 2*freq, ...` and always the last one).
            Defaults to `1`.
        class_names: Names of the classes, used in captions. Defaults to `None`.
        num_probes: How many probes to take (the first ones). Defaults to `None`: all of an
            array, 16 from a dataset.
        log_before_training: Also log the untrained state, at step `initial_epoch - 1` (step
            `-1` for a fresh `fit`), so that step `e` still means "after epoch `e`" as in
            Keras's `TensorBoard`. Defaults to `False`.
        output: Output name or index for models with several outputs. Defaults to `None`.
        batch_size: Gradient evaluations per compiled call. Defaults to `32`.
        reduction: `"max_abs"`, `"sum_abs"` or `"signed"`. Defaults to `"max_abs"`.
        normalize: `"minmax"` or `"percentile"`. Defaults to `"minmax"`.
        percentile: Upper percentile for `normalize="percentile"`. Defaults to `99.0`.
        sigma: Gaussian smoothing of the maps, in pixels; `0` turns it off. Defaults to `1.0`.
        colormap: A matplotlib colormap name. Defaults to `"inferno"`.
        alpha: Maximum opacity of the heatmap over the image. Defaults to `0.5`.
        min_tile: Small probes are upscaled (nearest, by an integer factor) to at least this
            many pixels. Defaults to `64`.
        max_tile: Large probes are downscaled to at most this many pixels: PNG encoding is the
            largest cost after the gradients. Defaults to `160`.
        value_range: `(low, high)` of the probe images for display; inferred by default.
        run_name: Sub-directory of `log_dir` for this run. Defaults to `"saliency"`.
        overview: Also write the `saliency/overview` grid. It holds the same pixels as the
            per-probe panels, and PNG encoding dominates the epoch-end cost, so `False` about
            halves that cost. Defaults to `True`.
        alarm_threshold: With `masks`, warn when the mean mass in mask is below this (a
            fraction, or a multiple of chance with `alarm_relative=True`) for `patience` logged
            epochs (the pre-training log does not count). Defaults to `None` (no alarm).
        alarm_relative: Whether `alarm_threshold` is relative to chance. Defaults to `False`.
        patience: Logged epochs below the threshold before the alarm fires. Defaults to `1`.
        stop_training: Whether the alarm stops training (`model.stop_training = True`).
            Defaults to `False`.
        strict: Re-raise errors of the epoch-end work instead of warning (for tests).
            Defaults to `False`.

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
    cb = SaliencyCallback(probe_images, labels=probe_labels, log_dir="logs",
                          method="smoothgrad", class_names=["cat", "dog"])
    model.fit(x, y, epochs=20, callbacks=[cb, keras.callbacks.TensorBoard("logs")])
    # then: tensorboard --logdir logs --samples_per_plugin images=100
    ```
    """

    def __init__(
        self,
        images: Any,
        labels: Any = None,
        masks: Any = None,
        *,
        log_dir: str = "logs",
        method: str | Method = "vanilla",
        target: TargetSpec = "predicted",
        freq: int = 1,
        class_names: Sequence[str] | None = None,
        num_probes: int | None = None,
        log_before_training: bool = False,
        output: int | str | None = None,
        batch_size: int = 32,
        reduction: Reduction = "max_abs",
        normalize: Normalization = "minmax",
        percentile: float = 99.0,
        sigma: float = 1.0,
        colormap: str = "inferno",
        alpha: float = 0.5,
        min_tile: int = 64,
        max_tile: int = 160,
        value_range: tuple[float, float] | None = None,
        run_name: str = "saliency",
        overview: bool = True,
        alarm_threshold: float | None = None,
        alarm_relative: bool = False,
        patience: int = 1,
        stop_training: bool = False,
        strict: bool = False,
    ) -> None:
        super().__init__()
        self.probes: Probes = load_probes(images, labels, masks, num_probes)
        self.method = get_method(method)
        self.freq = _positive_int("freq", freq)
        self.batch_size = _positive_int("batch_size", batch_size)
        if reduction not in postprocess.REDUCTIONS:
            raise ValueError(
                f"Unknown `reduction`: received {reduction!r}; expected one of "
                f"{list(postprocess.REDUCTIONS)}"
            )
        if normalize not in ("minmax", "percentile"):
            raise ValueError(
                f"Unknown `normalize`: received {normalize!r}; expected 'minmax' or 'percentile'"
            )
        postprocess.check_options(reduction, normalize, percentile)
        check_log_dir(log_dir)
        if not isinstance(run_name, str) or not run_name or "/" in run_name:
            raise ValueError(f"`{_NAME}` expected a plain `run_name`, received {run_name!r}")
        self.renderer = Renderer(
            sigma=sigma,
            colormap=colormap,
            alpha=alpha,
            min_tile=min_tile,
            max_tile=max_tile,
            value_range=value_range,
            signed=reduction == "signed",
        )
        self.class_names = self._check_class_names(class_names)
        if isinstance(target, str) and target == "label" and self.probes.labels is None:
            raise ValueError(f'`{_NAME}` got target="label" but no `labels`; received labels=None')
        if not callable(target) and not isinstance(target, (str, int, np.integer)):
            _inputs.resolve_targets(target, len(self.probes), None, None)
        self.alarm: ShortcutAlarm | None = None
        if alarm_threshold is not None:
            if self.probes.masks is None:
                raise ValueError(
                    f"`{_NAME}` got `alarm_threshold={alarm_threshold}` but no `masks`; the alarm "
                    "watches the saliency mass inside the masks"
                )
            self.alarm = ShortcutAlarm(alarm_threshold, patience, bool(alarm_relative))
        self.target = target
        self.log_dir = log_dir
        self.output = output
        self.reduction: Reduction = reduction
        self.normalize: Normalization = normalize
        self.percentile = float(percentile)
        self.log_before_training = bool(log_before_training)
        self.overview = bool(overview)
        self.stop_training = bool(stop_training)
        self.strict = bool(strict)
        self.writer = RunWriter(log_dir, run_name)
        self.alarm_events: list[AlarmEvent] = []
        self.history: dict[str, list[tuple[int, float]]] = {}
        self._explainer: Explainer | None = None
        self._prepared: tuple[np.ndarray, np.ndarray] | None = None
        self._pending_initial_log = False
        self._chance: np.ndarray | None = None
        self._label_ids: np.ndarray | None = None
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

    # -- Keras hooks ---------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.alarm_events = []
        self.history = {}
        if self.alarm is not None:
            self.alarm.reset()
        self._is_chief = _is_chief(self.model)
        self._setup()  # errors here are the user's configuration: raise before training
        self._pending_initial_log = self.log_before_training

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._pending_initial_log:
            self._pending_initial_log = False
            self._safely(epoch - 1, None, initial=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        last = self.params.get("epochs") if self.params else None
        if epoch % self.freq == 0 or (last is not None and epoch == last - 1):
            self._safely(epoch, logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        try:
            self.writer.close()
        except Exception as err:
            if self.strict:
                raise
            warnings.warn(f"{_NAME}: closing the event file failed: {err!r}", stacklevel=2)

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
        if self._explainer is None or self._prepared is None:
            raise RuntimeError(f"{_NAME}.log_step needs a model: call it during `fit`.")
        if self.writer.reopen_if_lost():
            warnings.warn(
                f"{_NAME}: the log directory {self.writer.path!r} disappeared during training; "
                "a new event file is started there (earlier steps are lost).",
                stacklevel=3,
            )
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
            self.writer.scalars({"saliency/nonfinite": 1.0}, step)
            self.writer.flush()
            return None
        captions = self._captions(result)
        panels = self.renderer.panels(self.probes.raw, result.maps, captions)
        description = self._description
        if self.overview:
            self.writer.images("saliency/overview", self.renderer.grid(panels), step, description)
        self.writer.images("saliency/probes", panels, step, description)
        scalars = self._scalars(result, step, logs, initial)
        self.writer.scalars(scalars, step)
        self.writer.flush()
        return result

    def _scalars(
        self, result: Explanation, step: int, logs: dict[str, Any] | None, initial: bool
    ) -> dict[str, float]:
        conf = result.confidence
        scalars: dict[str, float] = {"saliency/confidence": float(conf.mean())}
        for i, c in enumerate(conf):
            scalars[f"saliency/confidence/probe_{i:02d}"] = float(c)
        if self._label_ids is not None:
            predicted = self._predicted(result)
            scalars["saliency/probe_accuracy"] = float((predicted == self._label_ids).mean())
        masks = self.probes.masks
        if masks is not None:
            raw = result.reduced
            if raw is None:
                raw = postprocess.reduce_channels(result.attributions, self.reduction)
            values = {
                "mass_in_mask": _metrics.mass_in_mask(raw, masks),
                "pointing_game": _metrics.pointing_game(raw, masks),
                "rank_in_mask": _metrics.rank_in_mask(raw, masks),
            }
            for name, per_probe in values.items():
                mean = float(np.nanmean(per_probe)) if np.isfinite(per_probe).any() else np.nan
                scalars[f"saliency/{name}"] = mean
                self.history.setdefault(name, []).append((step, mean))
                if logs is not None:
                    logs[f"saliency_{name}"] = mean
            for i, m in enumerate(values["mass_in_mask"]):
                scalars[f"saliency/mass_in_mask/probe_{i:02d}"] = float(m)
            assert self._chance is not None
            scalars["saliency/mass_in_mask_chance"] = float(np.nanmean(self._chance))
            if not initial:
                self._update_alarm(step, values["mass_in_mask"], scalars)
        return scalars

    def _update_alarm(self, step: int, mass: np.ndarray, scalars: dict[str, float]) -> None:
        if self.alarm is None or self._chance is None:
            return
        event = self.alarm.update(step, mass, self._chance)
        scalars["saliency/alarm"] = float(event is not None)
        if event is None:
            return
        self.alarm_events.append(event)
        self.writer.text("saliency/alarm_message", event.message, step)
        warnings.warn(f"{_NAME}: {event.message}", stacklevel=4)
        if self.stop_training and self.model is not None:
            self.model.stop_training = True

    # -- captions and descriptions -------------------------------------------------------------

    def _predicted(self, result: Explanation) -> np.ndarray:
        if result.outputs.shape[1] == 1:
            return (result.outputs[:, 0] > 0.5).astype(np.int64)
        return result.outputs.argmax(axis=1)

    def _name(self, c: int) -> str:
        if self.class_names is not None and 0 <= c < len(self.class_names):
            return self.class_names[c]
        return str(c)

    def _captions(self, result: Explanation) -> list[str]:
        assert self._explainer is not None
        head = self._explainer.head
        captions = []
        labels = self.probes.labels
        if head.num_classes is None or not head.exact:  # regression or unknown head
            for i in range(len(result.targets)):
                truth = f" y={float(np.ravel(labels[i])[0]):.3g}" if labels is not None else ""
                captions.append(f"#{i}{truth} pred={float(result.outputs[i, 0]):.3g}")
            return captions
        predicted = self._predicted(result)
        probs = result.outputs
        for i in range(len(result.targets)):
            p = int(predicted[i])
            conf = probs[i, 0] if probs.shape[1] == 1 and p == 1 else probs[i, p]
            if probs.shape[1] == 1 and p == 0:
                conf = 1.0 - probs[i, 0]
            truth = ""
            if self._label_ids is not None:
                truth = f" y={self._name(int(self._label_ids[i]))}"
            text = f"#{i}{truth} pred={self._name(p)} {float(conf):.0%}"
            if int(result.targets[i]) != p and not callable(self.target):
                text += f" map={self._name(int(result.targets[i]))}"
            captions.append(text)
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
        )
