"""Background interventions: does the prediction follow the object or its background?

After the Backgrounds Challenge (Xiao, Engstrom, Ilyas, Madry, "Noise or Signal: The Role of
Image Backgrounds in Object Recognition", ICLR 2021), each probe with a foreground mask gets
counterfactual versions, built once from the fixed probes (they never change between epochs):

- `only_fg`: the object on a neutral background: every background pixel is set to the probe
  set's mean colour (per channel, over all probes and pixels). A constant colour carries no
  class information, and unlike black (the challenge's fill) it is neutral whatever the input
  range (0..1, 0..255, or standardised inputs where 0 is already a colour).
- `only_bg`: the object removed, its hole filled with a shifted copy of the same image's
  background (`shift_fill`): the background's colours, texture, grain and sharpness, no outline
  of the object. (A per-pixel resampling, the former fill, puts sharp noise into a blurred
  background and loses a blur cue; `benchmarks/bench_fills.py` measures both.)
- `mixed_rand`: the object pasted onto another probe's `only_bg` background. The partner is
  drawn once, from a fixed seed, among probes of another class when labels exist (none when
  every probe has the same class; any other probe without labels), so every epoch and every
  process uses the same pairs.
- `mixed_same`: the same with a partner of the same class (probes whose class has no other
  probe are left out); without labels, a second partner drawn at random (another probe than
  the `mixed_rand` one). The two swaps give the harm estimate (`calibration`).

A model that reads the object keeps its prediction under a background swap; one that reads
the background follows the partner. `score` turns the model's outputs on these images into
the signals the callback logs: accuracies, the gap `accuracy - mixed_rand_accuracy` and the
`flip_rate` (the fraction of swaps that change the predicted class, no labels needed). For a
regression output (one linear unit) the analogue of the flip rate is `swap_change`, see
`score`.

Probes whose mask is empty or covers the whole image have no object or no background to swap;
they are left out (`BackgroundTest.valid`). Pure numpy/scipy: the forward pass is the
engine's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from saliency_callback.shortcuts import calibration

VARIANTS = ("only_fg", "only_bg", "mixed_rand", "mixed_same")
SWAPS = ("mixed_rand", "mixed_same")
DEFAULT_SEED = 0


def neutral_fill(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """`only_fg`: background pixels set to the probe set's mean colour (per channel)."""
    x = np.asarray(images, np.float32)
    fill = x.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    return np.where(masks[..., None], x, fill).astype(np.float32)


FILLS = ("shift", "resample")
"""How `remove_objects` fills the object's hole: `"shift"` (the default) copies the same
image's background from elsewhere, `"resample"` draws each pixel from the background at
random."""


def _coverage(hole: np.ndarray, source: np.ndarray) -> np.ndarray:
    """For every shift `(dy, dx)` in `(-(H-1)..H-1, -(W-1)..W-1)`, how many pixels of `hole`
    land on a `source` pixel when moved by it (a cross-correlation, via the FFT)."""
    from scipy import signal

    counts = signal.fftconvolve(source.astype(np.float64), hole[::-1, ::-1].astype(np.float64))
    return np.rint(counts).astype(np.int64)


def shift_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The object's pixels replaced by a shifted copy of the same image's background.

    A copy of another part of the background keeps what a per-pixel fill loses: the colour,
    texture, grain and sharpness (a blurred background stays blurred inside the hole, a sharp
    one sharp), and it leaves no streaks along the silhouette. The shift that covers the most
    of the hole with background pixels is taken (the nearest among equals); what it leaves
    uncovered (an object too large for one copy) takes the next best shift, until the hole is
    full. The copy's own structure can meet the hole's edge in a seam.
    """
    h, w = mask.shape
    out = image.copy()
    background = ~mask
    hole = mask.copy()
    dy, dx = np.meshgrid(np.arange(-(h - 1), h), np.arange(-(w - 1), w), indexing="ij")
    distance = dy**2 + dx**2
    while hole.any():
        counts = _coverage(hole, background)  # counts[h-1+dy, w-1+dx]: hole moved by (dy, dx)
        best = np.flatnonzero(counts.reshape(-1) == counts.max())
        k = best[np.argmin(distance.reshape(-1)[best])]
        sy, sx = int(dy.reshape(-1)[k]), int(dx.reshape(-1)[k])
        ys, xs = np.nonzero(hole)
        ty, tx = ys + sy, xs + sx
        inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
        ok = np.zeros(len(ys), bool)
        ok[inside] = background[ty[inside], tx[inside]]
        out[ys[ok], xs[ok]] = image[ty[ok], tx[ok]]
        hole[ys[ok], xs[ok]] = False
    return out


def remove_objects(
    images: np.ndarray, masks: np.ndarray, seed: int = DEFAULT_SEED, fill: str = "shift"
) -> np.ndarray:
    """`only_bg`: the object removed, its pixels filled from the same image's background.

    `fill="shift"` (the default, `shift_fill`): a shifted copy of the background, which keeps
    its colour, texture, grain and sharpness. `fill="resample"`: each object pixel takes the
    value of a background pixel of the same image drawn at random (seeded); it keeps the
    colours but not the spatial structure, so a blurred background gets a sharp, noisy hole
    (the benchmark's blur families measure the difference, docs/detection.md). Images whose
    mask is empty or covers everything are returned unchanged.
    """
    if fill not in FILLS:
        raise ValueError(f"expected `fill` to be one of {FILLS}, received {fill!r}")
    x = np.asarray(images, np.float32)
    out = x.copy()
    rng = np.random.default_rng(seed)
    for i, mask in enumerate(masks):
        if not mask.any() or mask.all():
            continue
        if fill == "shift":
            out[i] = shift_fill(x[i], mask)
            continue
        background = x[i][~mask]
        out[i][mask] = background[rng.integers(0, len(background), int(mask.sum()))]
    return out


def paste(
    images: np.ndarray, masks: np.ndarray, backgrounds: np.ndarray, partners: np.ndarray
) -> np.ndarray:
    """Object `i` (pixels where `masks[i]`) over `backgrounds[partners[i]]`; rows with no
    partner (`-1`) keep their own image."""
    x = np.asarray(images, np.float32)
    idx = np.where(partners >= 0, partners, np.arange(len(x)))
    return np.where(masks[..., None], x, backgrounds[idx]).astype(np.float32)


def pair_probes(
    valid: np.ndarray, classes: np.ndarray | None, *, same: bool, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """One partner per probe, drawn once from `seed`; `-1` where none qualifies.

    Args:
        valid: bool `(N,)`, which probes can take part.
        classes: int `(N,)` class of each probe, or `None` (then any other probe qualifies
            for `same=False`, and for `same=True` any other probe than the `same=False`
            partner: a second random swap, for the harm estimate).
        same: Whether the partner must share the probe's class (`mixed_same`) or differ from
            it (`mixed_rand`). With `classes` and a single class among the valid probes,
            `mixed_rand` has no partners: swapping backgrounds within one class cannot show a
            background reader (its prediction would not change), so the swap signals are NaN
            rather than a false all-clear.
        seed: Seed of the draw; the same inputs and seed always give the same pairs.
    """
    rng = np.random.default_rng(seed)
    n = len(valid)
    partners = np.full(n, -1, np.int64)
    if same and classes is None:  # without labels: a second random partner
        first = pair_probes(valid, None, same=False, seed=seed)
        rng = np.random.default_rng(seed + 1)
    indices = np.arange(n)
    for i in range(n):
        if not valid[i]:
            continue
        others = valid & (indices != i)
        if same and classes is None:
            others &= indices != first[i]
        elif classes is not None:
            matching = others & ((classes == classes[i]) if same else (classes != classes[i]))
            others = matching  # one class only: no partner (a swap could not tell)
        choices = indices[others]
        if len(choices):
            partners[i] = int(rng.choice(choices))
    return partners


@dataclass(frozen=True)
class BackgroundTest:
    """The counterfactual probes of one probe set, built once.

    Attributes:
        valid: bool `(N,)`: probes with both object and background pixels.
        partners: `{"mixed_rand": (N,), "mixed_same": (N,)}` partner indices, `-1` for none.
        images: `{variant: float32 (N, H, W, C)}` for the variants in `variants`.
        classes: int `(N,)` class ids used for pairing and accuracies, or `None`.
    """

    valid: np.ndarray
    partners: dict[str, np.ndarray]
    images: dict[str, np.ndarray]
    classes: np.ndarray | None = None
    variants: tuple[str, ...] = field(default=VARIANTS)

    @classmethod
    def build(
        cls,
        images: np.ndarray,
        masks: np.ndarray,
        classes: np.ndarray | None = None,
        seed: int = DEFAULT_SEED,
        fill: str = "shift",
    ) -> BackgroundTest:
        """Builds the variants of `images` `(N, H, W, C)` with bool `masks` `(N, H, W)`;
        `fill` is how `only_bg` fills the object's hole (`remove_objects`)."""
        masks = np.asarray(masks, bool)
        area = masks.mean(axis=(1, 2))
        valid = (area > 0) & (area < 1)
        only_bg = remove_objects(images, masks, seed, fill)
        partners = {
            "mixed_rand": pair_probes(valid, classes, same=False, seed=seed),
            "mixed_same": pair_probes(valid, classes, same=True, seed=seed),
        }
        built = {"only_fg": neutral_fill(images, masks), "only_bg": only_bg}
        for swap in SWAPS:  # mixed_rand always (it is shown; probes without a partner keep
            # their own image and are left out of the scores), mixed_same where pairs exist
            if swap == "mixed_rand" or (partners[swap] >= 0).any():
                built[swap] = paste(images, masks, only_bg, partners[swap])
        variants = tuple(v for v in VARIANTS if v in built)
        return cls(valid, partners, built, classes, variants)

    @property
    def invalid(self) -> list[int]:
        """Probes left out (empty mask or a mask covering the whole image)."""
        return [int(i) for i in np.flatnonzero(~self.valid)]

    @functools.cached_property
    def batch(self) -> np.ndarray:
        """All variants' images in one batch, in `variants` order (`len(variants) * N`); built
        once, the probes never change."""
        return np.concatenate([self.images[v] for v in self.variants])

    def split(self, outputs: np.ndarray) -> dict[str, np.ndarray]:
        """Splits the model's outputs on `batch()` back into one array per variant."""
        return dict(zip(self.variants, np.split(outputs, len(self.variants)), strict=True))


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Class ids from model outputs `(N, K)`: argmax, or `p > 0.5` for one sigmoid unit."""
    if outputs.shape[1] == 1:
        return (outputs[:, 0] > 0.5).astype(np.int64)
    return outputs.argmax(axis=1)


def class_probability(outputs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The probability the model gives class `classes[i]` on row `i` of `outputs` `(N, K)`.

    Rows that are not probabilities (negative, or not summing to 1: logits) go through a
    softmax first; one unit outside [0, 1] through a sigmoid. One sigmoid unit is two classes:
    `p` for class 1, `1 - p` for class 0.
    """
    x = np.asarray(outputs, np.float64)
    rows = np.arange(len(x))
    if x.shape[1] == 1:
        p = x[:, 0]
        if p.min(initial=0.0) < 0 or p.max(initial=0.0) > 1:
            p = 1 / (1 + np.exp(-p))
        return np.where(np.asarray(classes) == 1, p, 1 - p)
    if x.min(initial=0.0) < 0 or not np.allclose(x.sum(axis=1), 1, atol=1e-3):
        x = np.exp(x - x.max(axis=1, keepdims=True))
        x /= x.sum(axis=1, keepdims=True)
    return x[rows, np.asarray(classes, np.int64)]


def swap_agreement(
    test: BackgroundTest, original: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which of each probe's two swaps puts its object on a background of its own class.

    A background's class is the class of the probe it comes from: its label, or without labels
    the model's prediction on that probe's whole image (object and background together), never
    what the model reads from the background alone (see `calibration`: sorting by that
    reading selects the composites that the background pushes, shortcut or not). With labels
    the `mixed_same` partner always shares the class and the `mixed_rand` one never does.

    Returns:
        `(classes, same_agrees, rand_agrees, both)`: int `(N,)` the class of each probe; bool
        `(N,)` whether its `mixed_same` partner has its class, and its `mixed_rand` one; bool
        `(N,)` the probes with both swaps (the others' agreement is meaningless).
    """
    y = test.classes if test.classes is not None else predicted_classes(original)
    first, second = test.partners["mixed_same"], test.partners["mixed_rand"]
    both = test.valid & (first >= 0) & (second >= 0)
    return y, y[np.where(both, first, 0)] == y, y[np.where(both, second, 0)] == y, both


def harm(
    test: BackgroundTest,
    original: np.ndarray,
    variants: dict[str, np.ndarray],
    alpha: float = calibration.DEFAULT_ALPHA,
) -> tuple[calibration.HarmEstimate, np.ndarray]:
    """The estimated accuracy lost where the background disagrees, and its per-probe terms.

    Each probe's object on its two partners' backgrounds (`mixed_same`, `mixed_rand`), sorted
    by the partners' classes (`swap_agreement`, see `calibration`).
    """
    n = len(original)
    if not {"mixed_rand", "mixed_same"} <= set(variants):
        return calibration.harm_estimate(np.array([])), np.full(n, np.nan)
    y, same_agrees, rand_agrees, both = swap_agreement(test, original)
    d = calibration.paired_differences(
        same_agrees,
        rand_agrees,
        class_probability(variants["mixed_same"], y),
        class_probability(variants["mixed_rand"], y),
    )
    d[~both] = np.nan
    return calibration.harm_estimate(d, alpha), d


def _mean(values: np.ndarray, where: np.ndarray) -> float:
    return float(values[where].mean()) if where.any() else float("nan")


def score(
    test: BackgroundTest,
    original: np.ndarray,
    variants: dict[str, np.ndarray],
    *,
    regression: bool = False,
    targets: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The background signals from the model's outputs on the probes and their variants.

    Classification (softmax, or one sigmoid unit as two classes):
    - `flip_rate`: fraction of `mixed_rand` swaps whose predicted class differs from the
      original probe's (no labels needed; 0 = the background never matters).
    - `reliance`: over the same composites (object of probe i on the background of probe j),
      the share whose prediction equals probe j's minus the share that equals probe i's: +1
      when predictions follow the background, -1 when they follow the object, about 0 when
      they follow neither (an unstable, untrained model, which also flips a lot). No labels
      needed, no extra forward pass.
    - `harm`, `harm_low`, `harm_high`: the estimated accuracy lost where the background
      disagrees and its one-sided 95% bounds (`harm`; per probe in `per_probe["harm"]`);
      `harm_probes`: how many probes it rests on (NaN bounds below 2: "cannot tell").
    - with `test.classes`: `accuracy` (original probes), `only_fg_accuracy`,
      `only_bg_accuracy` (with `only_bg_chance` = 1/K), `mixed_rand_accuracy`,
      `mixed_same_accuracy` (the object's class is the right answer), and
      `gap = accuracy - mixed_rand_accuracy`, all over the probes that take part.

    Regression (one linear unit; `targets` are the true values if known):
    - `swap_change`: mean |f(mixed_rand_i) - f(i)| over mean |f(partner_i) - f(i)|: the share
      of the difference between two probes' outputs that follows the background (0 = none,
      1 = the output is the partner's);
    - with `targets`: `mae`, `only_fg_mae`, `only_bg_mae`, `mixed_rand_mae`, and
      `gap = mixed_rand_mae - mae` (how much worse the swap makes it).

    Returns:
        `(scalars, per_probe)`: scalar means, and per-probe values (`flip` 0/1 per probe, or
        `change` for regression; NaN for probes that do not take part).
    """
    rand = test.partners["mixed_rand"]
    swapped = test.valid & (rand >= 0)
    scalars: dict[str, float] = {}
    per_probe: dict[str, np.ndarray] = {}
    if regression:
        y0 = original[:, 0].astype(np.float64)
        change = np.full(len(y0), np.nan)
        if "mixed_rand" in variants:
            idx = np.where(swapped, rand, 0)
            moved = np.abs(variants["mixed_rand"][:, 0] - y0)
            apart = np.abs(y0[idx] - y0)
            denominator = _mean(apart, swapped)
            change[swapped] = moved[swapped]
            ratio = _mean(moved, swapped) / denominator if denominator > 0 else float("nan")
            scalars["swap_change"] = ratio
        per_probe["change"] = change
        if targets is not None:
            t = np.asarray(targets, np.float64).reshape(len(y0), -1)[:, 0]
            scalars["mae"] = _mean(np.abs(y0 - t), test.valid)
            for v in ("only_fg", "only_bg", "mixed_rand"):
                if v in variants:
                    where = swapped if v == "mixed_rand" else test.valid
                    scalars[f"{v}_mae"] = _mean(np.abs(variants[v][:, 0] - t), where)
            if "mixed_rand_mae" in scalars:
                scalars["gap"] = scalars["mixed_rand_mae"] - _mean(np.abs(y0 - t), swapped)
        return scalars, per_probe

    pred = predicted_classes(original)
    flips = np.full(len(pred), np.nan)
    if "mixed_rand" in variants:
        mixed = predicted_classes(variants["mixed_rand"])
        flipped = mixed != pred
        flips[swapped] = flipped[swapped]
        scalars["flip_rate"] = _mean(flipped.astype(np.float64), swapped)
        # Each composite holds object i and background j: does its prediction follow the
        # background's source (j) or the object's (i)? Unstable predictions follow neither.
        source = np.where(swapped, rand, 0)
        follows_bg = (mixed == pred[source]).astype(np.float64)
        follows_obj = (mixed == pred).astype(np.float64)
        scalars["reliance"] = _mean(follows_bg - follows_obj, swapped)
        estimate, per_probe["harm"] = harm(test, original, variants)
        scalars.update(estimate.as_dict())
        scalars["harm_probes"] = float(estimate.n)
    per_probe["flip"] = flips
    classes = test.classes
    if classes is not None:
        right = (pred == classes).astype(np.float64)
        scalars["accuracy"] = _mean(right, test.valid)
        k = max(original.shape[1], 2)
        for v in VARIANTS:
            if v not in variants:
                continue
            where = test.valid & (test.partners[v] >= 0) if v in SWAPS else test.valid
            correct = (predicted_classes(variants[v]) == classes).astype(np.float64)
            scalars[f"{v}_accuracy"] = _mean(correct, where)
        scalars["only_bg_chance"] = 1.0 / k
        if "mixed_rand_accuracy" in scalars:
            scalars["gap"] = _mean(right, swapped) - scalars["mixed_rand_accuracy"]
    return scalars, per_probe
