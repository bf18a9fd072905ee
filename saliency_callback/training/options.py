"""The callback's option objects: `Display` (how maps look) and `Runtime` (how the callback runs).

Like a Keras optimizer or `EarlyStopping`, each is built once, validated when it is built, and
can be reused across callbacks: `SaliencyCallback(x, display=Display(sigma=2.0))`.

`legacy_options` maps the keywords `SaliencyCallback` took before these objects existed
(`sigma=`, `batch_size=`, `alarm_threshold=`, ...) onto them, with a `DeprecationWarning` that
names the new spelling. They keep working for one release.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from saliency_callback.maps import postprocess
from saliency_callback.maps.postprocess import Normalization, Reduction
from saliency_callback.output.render import Renderer
from saliency_callback.shortcuts.alarm import ShortcutAlarm


def positive_int(owner: str, name: str, value: Any) -> int:
    """`value` as an int >= 1, or a `TypeError`/`ValueError` naming `owner` and `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{owner}` expected `{name}` to be an int, received {name}={value!r}")
    if value < 1:
        raise ValueError(
            f"`{owner}` expected `{name}` to be a positive integer, received {name}={value}"
        )
    return int(value)


def _check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{owner}` expected `{name}` to be a bool, received {name}={value!r}")
    return bool(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Display:
    """How the saliency maps are turned into pictures, and which pictures are written.

    Pass it to the callback: `SaliencyCallback(x, display=Display(sigma=2.0, overview=False))`.
    All fields are keyword-only and validated when the `Display` is built.

    Args:
        reduction: How a gradient with colour channels becomes one value per pixel:
            `"max_abs"`, `"sum_abs"` or `"signed"` (signed maps are drawn with a diverging
            colormap range). The mask metrics (`mass_in_mask`, ...) read the reduced map, so
            this choice also defines what they measure. Defaults to `"max_abs"`.
        normalize: `"minmax"` (each map into [0, 1]) or `"percentile"` (clipped at
            `percentile`). Display only: the metrics read the unnormalised map. Defaults to
            `"minmax"`.
        percentile: Upper percentile for `normalize="percentile"`. Defaults to `99.0`.
        sigma: Gaussian smoothing of the maps, in pixels; `0` turns it off. Defaults to `1.0`.
        colormap: A matplotlib colormap name. Defaults to `"inferno"`.
        alpha: Maximum opacity of the heatmap over the image, in [0, 1]. Defaults to `0.5`.
        min_tile: Small probes are upscaled (nearest, by an integer factor) to at least this
            many pixels. Defaults to `64`.
        max_tile: Large probes are downscaled to at most this many pixels: PNG encoding is the
            largest cost after the gradients. Defaults to `160`.
        value_range: `(low, high)` of the probe images for display; inferred by default.
        overview: Also write the `saliency/overview` grid. It holds the same pixels as the
            per-probe panels, and PNG encoding dominates the epoch-end cost, so `False` about
            halves that cost. Defaults to `True`.
        timeline: Also write `saliency/timeline` (every probe at up to 12 logged epochs, in
            the latest step). Defaults to `True`.
        overview_pixels: Pixel budget of the overview grid and of the timeline: with many
            probes their panels shrink to fit. Defaults to `2**21` (about 1450x1450).

    Raises:
        TypeError, ValueError: For a bad value, naming the field and the received value.

    Example:
    >>> display = Display(sigma=2.0, colormap="viridis", overview=False)
    """

    reduction: Reduction = "max_abs"
    normalize: Normalization = "minmax"
    percentile: float = 99.0
    sigma: float = 1.0
    colormap: str = "inferno"
    alpha: float = 0.5
    min_tile: int = 64
    max_tile: int = 160
    value_range: tuple[float, float] | None = None
    overview: bool = True
    timeline: bool = True
    overview_pixels: int = 2**21

    def __post_init__(self) -> None:
        if self.reduction not in postprocess.REDUCTIONS:
            raise ValueError(
                f"Unknown `reduction`: received {self.reduction!r}; expected one of "
                f"{list(postprocess.REDUCTIONS)}"
            )
        if self.normalize not in ("minmax", "percentile"):
            raise ValueError(
                f"Unknown `normalize`: received {self.normalize!r}; expected 'minmax' or "
                "'percentile'"
            )
        postprocess.check_options(self.reduction, self.normalize, self.percentile)
        renderer = self.renderer()  # validates sigma, colormap, alpha, tiles, value_range
        object.__setattr__(self, "sigma", renderer.sigma)
        object.__setattr__(self, "alpha", renderer.alpha)
        object.__setattr__(self, "value_range", renderer.value_range)
        object.__setattr__(self, "percentile", float(self.percentile))
        for name in ("overview", "timeline"):
            object.__setattr__(self, name, _check_bool("Display", name, getattr(self, name)))
        pixels = positive_int("Display", "overview_pixels", self.overview_pixels)
        object.__setattr__(self, "overview_pixels", pixels)

    def renderer(self) -> Renderer:
        """The `Renderer` that draws the panels with these options."""
        return Renderer(
            sigma=self.sigma,
            colormap=self.colormap,
            alpha=self.alpha,
            min_tile=self.min_tile,
            max_tile=self.max_tile,
            value_range=self.value_range,
            signed=self.reduction == "signed",
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Runtime:
    """How the callback runs and where it writes: work per call, limits, threads, errors.

    Pass it to the callback: `SaliencyCallback(x, runtime=Runtime(batch_size=8))`. All fields
    are keyword-only and validated when the `Runtime` is built. None of them changes what a
    map or a signal means.

    Args:
        batch_size: Gradient evaluations per compiled call (lower it when the model is large
            and memory is short). Defaults to `32`.
        background_writer: Render, encode and write each logged step on a background thread,
            at most one logged step behind (the epoch end then blocks ~1.2x a bare gradient
            pass instead of ~3-9x; the event files are identical). `False` does it all inline.
            Defaults to `True`.
        max_step_bytes: Cap on the PNG bytes written per logged step: beyond it, the last
            per-probe (then background) panels of that step are left out, with one warning
            per `fit`. Defaults to `8 * 2**20` (8 MiB: 800 MiB for 100 logged epochs).
        log_before_training: Also log the untrained state, at step `initial_epoch - 1` (step
            `-1` for a fresh `fit`), so that step `e` still means "after epoch `e`" as in
            Keras's `TensorBoard`. Defaults to `False`.
        run_name: Sub-directory of `log_dir` for this run, next to Keras's `train` and
            `validation`. Defaults to `"saliency"`.
        strict: Re-raise errors of the epoch-end work instead of warning (for tests).
            Defaults to `False`.

    Raises:
        TypeError, ValueError: For a bad value, naming the field and the received value.

    Example:
    >>> runtime = Runtime(batch_size=8, log_before_training=True)
    """

    batch_size: int = 32
    background_writer: bool = True
    max_step_bytes: int = 8 * 2**20
    log_before_training: bool = False
    run_name: str = "saliency"
    strict: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_step_bytes"):
            object.__setattr__(self, name, positive_int("Runtime", name, getattr(self, name)))
        for name in ("background_writer", "log_before_training", "strict"):
            object.__setattr__(self, name, _check_bool("Runtime", name, getattr(self, name)))
        name = self.run_name
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            raise ValueError(
                f"`Runtime` expected a plain `run_name` (a non-empty directory name), received "
                f"run_name={name!r}"
            )


DISPLAY_KEYWORDS = tuple(f.name for f in dataclasses.fields(Display))
RUNTIME_KEYWORDS = tuple(f.name for f in dataclasses.fields(Runtime))
ALARM_KEYWORDS = ("alarm_threshold", "alarm_relative", "patience", "stop_training")


def _call(name: str, values: dict[str, Any]) -> str:
    return f"sc.{name}({', '.join(f'{k}={v!r}' for k, v in values.items())})"


def _deprecated(owner: str, keyword: str, value: Any, spelling: str) -> None:
    warnings.warn(
        f"{owner}: {keyword}={value!r} is deprecated and will be removed in the next release; "
        f"pass {spelling}",
        DeprecationWarning,
        stacklevel=5,  # _deprecated < _fold < legacy_options < __init__ < the user's call
    )


def legacy_options(
    owner: str,
    legacy: dict[str, Any],
    display: Display | None,
    runtime: Runtime | None,
    alarm: ShortcutAlarm | None,
) -> tuple[Display, Runtime, ShortcutAlarm | None]:
    """Folds the former constructor keywords in `legacy` into the option objects.

    Each keyword warns (`DeprecationWarning`, naming the new spelling) and maps onto the same
    behaviour as before: display keywords onto `Display`, runtime keywords onto `Runtime`,
    and `alarm_threshold`/`alarm_relative`/`patience` onto
    `ShortcutAlarm(threshold, monitor="mass_in_mask", ...)`; `stop_training=True` sets the
    alarm's `stop_training`.

    Raises:
        TypeError: For a keyword the callback never took, or an option object of the wrong type.
        ValueError: For a former keyword together with the object that now holds it.
    """
    unknown = sorted(set(legacy) - {*DISPLAY_KEYWORDS, *RUNTIME_KEYWORDS, *ALARM_KEYWORDS})
    if unknown:
        raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {unknown[0]!r}")
    for arg, value, cls in (("display", display, Display), ("runtime", runtime, Runtime)):
        if value is not None and not isinstance(value, cls):
            raise TypeError(
                f"`{owner}` expected `{arg}` to be a {cls.__name__} (e.g. {arg}=sc.{cls.__name__}"
                f"(...)), received {arg}={value!r}"
            )
    display = _fold(owner, "display", Display, display, legacy, DISPLAY_KEYWORDS)
    runtime = _fold(owner, "runtime", Runtime, runtime, legacy, RUNTIME_KEYWORDS)
    return display, runtime, _legacy_alarm(owner, legacy, alarm)


def _fold(
    owner: str,
    arg: str,
    cls: Any,
    given: Any,
    legacy: dict[str, Any],
    keywords: tuple[str, ...],
) -> Any:
    old = {k: legacy[k] for k in keywords if k in legacy}
    if old and given is not None:
        raise ValueError(
            f"`{owner}` got both `{arg}` and the former keyword(s) {sorted(old)}; pass them in "
            f"the object: {arg}={_call(cls.__name__, old)}"
        )
    for key, value in old.items():
        _deprecated(owner, key, value, f"{arg}={_call(cls.__name__, {key: value})}")
    return cls(**old) if given is None else given


def _legacy_alarm(
    owner: str, legacy: dict[str, Any], alarm: ShortcutAlarm | None
) -> ShortcutAlarm | None:
    old = {k: legacy[k] for k in ALARM_KEYWORDS if k in legacy}
    if not old:
        return alarm
    threshold = old.get("alarm_threshold")
    if alarm is not None and threshold is not None:
        raise ValueError(
            f"`{owner}` got both `alarm` and `alarm_threshold={threshold}`; pass "
            "`alarm=ShortcutAlarm(threshold, monitor=..., ...)` alone"
        )
    if alarm is not None and ("patience" in old or "alarm_relative" in old):
        raise ValueError(
            f"`{owner}` got `alarm` and the former keyword(s) "
            f"{sorted(set(old) & {'patience', 'alarm_relative'})}; pass them to the alarm: "
            "ShortcutAlarm(..., patience=..., relative_to='chance')"
        )
    stop = old.get("stop_training", False)
    if alarm is not None:  # stop_training=... with an alarm object: as before, it is set on it
        _deprecated(owner, "stop_training", stop, "alarm=sc.ShortcutAlarm(..., stop_training=...)")
        if stop:
            alarm.stop_training = True
        return alarm
    new: dict[str, Any] = {}
    if threshold is not None:
        new = {"threshold": threshold, "monitor": "mass_in_mask"}
        if old.get("alarm_relative", False):
            new["relative_to"] = "chance"
        if old.get("patience", 1) != 1:
            new["patience"] = old["patience"]
        if stop:
            new["stop_training"] = True
    for key, value in old.items():
        spelling = f"alarm={_call('ShortcutAlarm', new)}" if new else "alarm=sc.ShortcutAlarm(...)"
        _deprecated(owner, key, value, spelling)
    if threshold is None:  # the alarm keywords did nothing without alarm_threshold
        return None
    return ShortcutAlarm(**new)
