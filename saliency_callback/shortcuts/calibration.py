"""How much accuracy the background costs, estimated from the probes, with its uncertainty.

The user's own definition of a background shortcut is its harm: accuracy on images whose
background agrees with the class minus accuracy on images whose background disagrees. The
background tests (`saliency_callback.shortcuts.background`) paste each probe's object onto the
backgrounds of two other probes: one of its own class (`mixed_same`) and one of another class
(`mixed_rand`). For probe `i` of class `y`,

    d_i = P(y | object i on the background of a probe of class y)
        - P(y | object i on the background of a probe of another class)

is that probe's share of the harm (the paired form of the Backgrounds Challenge's BG-Gap,
Xiao et al. 2021: Mixed-Same minus Mixed-Rand). A background's class is its probe's label, or
without labels the model's prediction on that probe's whole image.

**The null hypothesis, and why it holds for real models.** Every CNN is moved by what is behind
the object: a photograph's edges and blobs push each prediction a little. The estimate does not
assume otherwise. It assumes only that a model which has learned no class-background
association is pushed the same way, on average, by the backgrounds of its own class and by
those of other classes: then `E[d_i] = 0`, however sensitive the model is to backgrounds.
That holds when the backgrounds are sorted by something the push cannot change (the probes'
labels). The former estimate sorted them by what the model reads from each background alone;
a model that reads a photograph as "1" is also pushed towards "1" by it with an object pasted
on, so that sorting selected the pushed composites and alarmed on healthy models
(docs/detection.md, the photographic families).

**What it measures, and where it fails.**
- It is diluted by how often the probes' backgrounds carry their class's cue: the estimate is
  about `(s - (1 - s) / (K - 1)) * harm` when a share `s` of the probes' backgrounds carry
  their own class's cue among `K` classes. Probes drawn like the training data (a validation
  split) have the training data's share; the dilution makes the alarm later, never falser.
- It compares backgrounds across probes: a cue that a probe's object carries (a colour of the
  object itself) or that sits inside the masks is not a background cue and is not measured.
- Probes unlike the training data (another camera, other scenes) estimate the harm on those
  images, not on the training distribution.
- It needs at least two probes of a class for a `mixed_same` partner: with one probe per class
  nothing can be estimated ("cannot tell", never "all clear").

Probabilities rather than right/wrong make every probe count: a partial shortcut moves the
probability on most probes even where it flips the class on a few. `harm_estimate` averages
the `d_i` and puts a Student-t confidence interval around the mean from the probes' own
spread, so the decision "the lower bound is above a margin" has the same false-alarm rate
with 8 probes or 64: more probes give a narrower interval, not another threshold.

Pure numpy/scipy; never imports the callback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MARGIN",
    "HarmEstimate",
    "harm_estimate",
    "paired_differences",
]

DEFAULT_ALPHA = 0.05
"""One-sided error of each bound: `[low, high]` is a 90% interval, and a model that costs no
more than the margin passes `low > margin` at most 5% of the time per logged epoch. Fixed a
priori (the conventional level), not tuned on a benchmark."""

DEFAULT_MARGIN = 0.05
"""The default alarm fires when the lower bound of the harm exceeds this: a background that
costs under 5 points of accuracy is not worth an alarm (the issue's "harmless", fixed a
priori)."""


@dataclass(frozen=True)
class HarmEstimate:
    """The estimated accuracy lost where the background disagrees, with its bounds.

    Attributes:
        harm: The estimate (a difference of probabilities, in [-1, 1]).
        low: One-sided `1 - alpha` lower bound (NaN with fewer than 2 probes).
        high: One-sided `1 - alpha` upper bound.
        n: Probes (or pairs) it rests on.
    """

    harm: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"harm": self.harm, "harm_low": self.low, "harm_high": self.high}


_NAN = HarmEstimate(math.nan, math.nan, math.nan, 0)


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
        raise TypeError(f"expected `alpha` to be a float, received {alpha!r}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"expected `alpha` in (0, 0.5), received alpha={alpha}")
    return float(alpha)


def _bounded(harm: float, half: float, n: int) -> HarmEstimate:
    low, high = max(harm - half, -1.0), min(harm + half, 1.0)
    return HarmEstimate(float(harm), float(low), float(high), n)


def paired_differences(
    agree_first: np.ndarray,
    agree_second: np.ndarray,
    p_first: np.ndarray,
    p_second: np.ndarray,
) -> np.ndarray:
    """Each probe's difference between its composite whose background agrees and the one whose
    background disagrees; NaN where both agree or both disagree (no information).

    Args:
        agree_first: bool `(N,)`: whether the probe's first background is of its class.
        agree_second: bool `(N,)`: the same for its second background.
        p_first: `(N,)` the probability of the probe's class on the first composite.
        p_second: `(N,)` the same on the second composite.
    """
    a1, a2 = np.asarray(agree_first, bool), np.asarray(agree_second, bool)
    p1, p2 = np.asarray(p_first, np.float64), np.asarray(p_second, np.float64)
    return np.where(a1 & ~a2, p1 - p2, np.where(~a1 & a2, p2 - p1, np.nan))


def harm_estimate(differences: np.ndarray, alpha: float = DEFAULT_ALPHA) -> HarmEstimate:
    """Paired estimate: the mean of the probes' differences, with a Student-t interval.

    Args:
        differences: `(N,)` per probe, the probability of its class on the composite whose
            background agrees minus on the one whose background disagrees; NaN for probes that
            do not take part.
        alpha: One-sided error of each bound.

    Returns:
        A `HarmEstimate`: NaN everywhere without any difference, NaN bounds with one; when all
        differences are equal the bounds equal the estimate. Bounds are clipped to [-1, 1].

    Raises:
        TypeError, ValueError: If `alpha` is not a number in (0, 0.5).
    """
    alpha = _check_alpha(alpha)
    d = np.asarray(differences, np.float64).reshape(-1)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return _NAN
    if n == 1:
        return HarmEstimate(float(d[0]), math.nan, math.nan, 1)
    half = stats.t.ppf(1 - alpha, n - 1) * d.std(ddof=1) / math.sqrt(n)
    return _bounded(float(d.mean()), float(half), n)
