"""Object masks and boxes proposed from the image alone, for probes without masks.

The background tests need to know where each probe's object is. Without user masks or boxes,
`propose_masks` finds the object in the pixels alone, never in the model being trained: a
shortcut model's most salient region *is* the shortcut, so its own saliency as the "object"
would keep the shortcut inside the box and hide it (circular).

The default method, `"grabcut"`, is OpenCV's GrabCut (Rother, Kolmogorov, Blake, SIGGRAPH 2004;
`cv2.grabCut`) started from a border prior: the image's outermost ring of pixels is background
for certain, a band along the border (5% of the side) probably background, the rest probably
object. GrabCut fits a colour model to each and cuts the image along the colour edges between
them. The proposal is the largest connected region of the result that does not touch the border
(the largest of all if every region does). Two things make a proposal implausible: a box
covering less than `min_area` or more than `max_area` of the image, and a box at the same
distance from all four sides, which is the inside of a frame (a border cue such as a frame or a
vignette is then all the "background" GrabCut saw). The inside of a frame is cut again within
the frame (twice at most); a box still implausible is tried once more with a 15% band. Then
come two attempts for an object that touches the border, where the largest region wins,
touching or not: first the border pixels whose colour is an outlier among the ring's (farther
from the ring's median colour in CIELAB than the median distance plus three robust standard
deviations, 1.4826 MAD, the conventional outlier rule) become probably object, the rest of
the ring stays background for certain; then a 5% band and no certain ring. A box still
implausible is replaced by the centre box (the middle half of each side) and flagged in
`fallback`: the caller should not trust it (the callback leaves such probes out of the
background tests). On whole-image textures, with no object, GrabCut separates
nothing and every probe falls back. GrabCut's k-means start draws from OpenCV's random
generator, which is seeded (`cv2.setRNGSeed(0)`) before each cut, so the same image always gets
the same proposal.

Other methods, kept for the benchmark (`benchmarks/bench_proposals.py`), which chose the
default: `"centre"` (the centre box for every image), and, with `opencv-contrib-python`'s
`cv2.saliency`, `"spectral_residual"` (Hou and Zhang, CVPR 2007) and `"fine_grained"`
(Montabone and Soto, 2010): the saliency map thresholded with Otsu's method, largest region.

Images are read as they come (uint8, or float in any range, standardised too; grayscale,
RGB, RGBA, non-square): each is rescaled to uint8 over its own 0.5 to 99.5 percentile range,
and shrunk (area averaging) so that its longer side is at most `work_size` pixels before the
proposal; boxes and masks come back at the image's own size. Pure numpy and OpenCV: no
TensorFlow, no model.
"""

from __future__ import annotations

import importlib
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "ProposedMasks",
    "bounding_boxes",
    "centre_boxes",
    "has_saliency_module",
    "propose_masks",
]

METHODS: tuple[str, ...] = ("grabcut", "centre", "spectral_residual", "fine_grained")
"""The proposal methods of `propose_masks(method=...)`."""
DEFAULT_METHOD = "grabcut"

# The attempts of "grabcut", in turn: the border band (a fraction of each side) and whether
# the outermost ring is background for certain (then regions touching the border lose).
_ATTEMPTS = ((0.05, "ring"), (0.15, "ring"), (0.05, "typical ring"), (0.05, "no ring"))
"""(band, ring) of each GrabCut attempt, in order: the outermost ring is background for certain
(`"ring"`), only where its colour is typical of the ring (`"typical ring"`), or not at all."""
_OUTLIER_SDS = 3.0  # robust standard deviations: the conventional outlier rule
_MIN_SPREAD = 1.0  # CIELAB units (8-bit): a flat border's noise is no outlier
_RANGE_PERCENTILES = (0.5, 99.5)
_MIN_SIDE = 8  # images smaller than this (at working size) get the centre box
_MAX_PEELS = 2


@dataclass(frozen=True, eq=False)
class ProposedMasks:
    """Object proposals for a batch of images.

    Attributes:
        masks: bool `(N, H, W)`: the proposed object's pixels (the centre box where
            `fallback`).
        boxes: int64 `(N, 4)`: each mask's bounding box `(x0, y0, x1, y1)` in pixels, end
            excluded (as `metrics.masks_from_boxes` takes them).
        fallback: bool `(N,)`: True where no plausible proposal was found and the centre box
            stands in; such a proposal is a placeholder, not an object.
        method: The method that made the proposals, one of `METHODS`.
    """

    masks: np.ndarray
    boxes: np.ndarray
    fallback: np.ndarray
    method: str

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def box_masks(self) -> np.ndarray:
        """bool `(N, H, W)`: each box filled."""
        from saliency_callback.maps.metrics import masks_from_boxes

        return masks_from_boxes(self.boxes, self.masks.shape)


def bounding_boxes(masks: Any) -> np.ndarray:
    """int64 `(N, 4)`: each mask's bounding box `(x0, y0, x1, y1)`, end excluded; an empty
    mask gets `(0, 0, 0, 0)`."""
    arr = np.asarray(masks, bool)
    out = np.zeros((len(arr), 4), np.int64)
    for i, mask in enumerate(arr):
        box = _box(mask)
        if box is not None:
            out[i] = box
    return out


def centre_boxes(n: int, height: int, width: int) -> np.ndarray:
    """int64 `(n, 4)`: the centre box `(x0, y0, x1, y1)` (the middle half of each side)."""
    box = (width // 4, height // 4, width - width // 4, height - height // 4)
    return np.tile(np.array(box, np.int64), (n, 1))


def _cv2() -> Any:
    """OpenCV (`opencv-python-headless`, a dependency), imported on first use."""
    try:
        return importlib.import_module("cv2")
    except ImportError as err:
        raise ImportError(
            "object proposals need OpenCV: pip install opencv-python-headless "
            f"(importing cv2 failed: {err})"
        ) from err


def _check_images(images: Any) -> np.ndarray:
    if hasattr(images, "numpy") and callable(images.numpy):
        images = images.numpy()
    try:
        arr = np.asarray(images)
    except Exception as err:
        raise TypeError(
            f"expected `images` to be an array, received {type(images).__name__}"
        ) from err
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"expected `images` of a numeric dtype, received dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or min(arr.shape) < 1:
        raise ValueError(
            f"expected `images` of shape (N, H, W) or (N, H, W, C), received {arr.shape}"
        )
    return arr


def _to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """One `(H, W, C)` image as uint8 RGB, over its own robust range (same scale per channel)."""
    c = image.shape[-1]
    if c == 1 or c == 2:
        image = np.repeat(image[..., :1], 3, axis=-1)
    elif c > 3:
        image = image[..., :3]
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    x = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = np.percentile(x, _RANGE_PERCENTILES)
    if not hi > lo:
        lo, hi = float(x.min()), float(x.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip((x - lo) * scale + 0.5, 0, 255).astype(np.uint8)


def _largest_region(foreground: np.ndarray, interior: bool = True) -> np.ndarray:
    """The largest 8-connected region; with `interior`, the largest not touching the border
    (of all, if every one does)."""
    cv2 = _cv2()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        foreground.astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return np.zeros(foreground.shape, bool)
    h, w = foreground.shape
    x, y = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
    x1 = x + stats[1:, cv2.CC_STAT_WIDTH]
    y1 = y + stats[1:, cv2.CC_STAT_HEIGHT]
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    touches = (x == 0) | (y == 0) | (x1 >= w) | (y1 >= h)
    if interior and (~touches).any():
        areas[touches] = -1.0
    return np.asarray(labels == 1 + int(np.argmax(areas)))


def _atypical(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Pixels in `where` whose colour is an outlier among the outermost ring's: farther from its
    median colour (CIELAB) than the ring's median distance plus `_OUTLIER_SDS` robust standard
    deviations. Where an object touches the border, its pixels are those outliers."""
    cv2 = _cv2()
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    ring = np.zeros(image.shape[:2], bool)
    ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
    centre = np.median(lab[ring], axis=0)
    to_ring = np.linalg.norm(lab[ring] - centre, axis=1)
    mid = float(np.median(to_ring))
    spread = max(1.4826 * float(np.median(np.abs(to_ring - mid))), _MIN_SPREAD)
    return where & (np.linalg.norm(lab - centre, axis=2) > mid + _OUTLIER_SDS * spread)


def _grabcut(image: np.ndarray, band: float, ring: str, iterations: int) -> np.ndarray:
    cv2 = _cv2()
    h, w = image.shape[:2]
    by, bx = max(2, round(band * h)), max(2, round(band * w))
    mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    mask[by : h - by, bx : w - bx] = cv2.GC_PR_FGD
    if ring != "no ring":
        odd = _atypical(image, mask == cv2.GC_PR_BGD) if ring == "typical ring" else None
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = cv2.GC_BGD
        if odd is not None:
            mask[odd] = cv2.GC_PR_FGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)  # GrabCut's k-means initialisation draws from OpenCV's RNG
    cv2.grabCut(image, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return _largest_region((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), interior=ring == "ring")


def has_saliency_module() -> bool:
    """Whether OpenCV's contrib saliency methods are installed (`opencv-contrib-python`)."""
    try:
        cv2 = _cv2()
    except ImportError:
        return False
    saliency = getattr(cv2, "saliency", None)
    return hasattr(saliency, "StaticSaliencySpectralResidual_create") and hasattr(
        saliency, "StaticSaliencyFineGrained_create"
    )


def _saliency_region(image: np.ndarray, method: str) -> np.ndarray:
    cv2 = _cv2()
    if not has_saliency_module():
        raise ImportError(
            f"method={method!r} needs OpenCV's contrib modules (`cv2.saliency`): "
            "pip install opencv-contrib-python-headless"
        )
    if method == "spectral_residual":
        model = cv2.saliency.StaticSaliencySpectralResidual_create()
    else:
        model = cv2.saliency.StaticSaliencyFineGrained_create()
    ok, saliency = model.computeSaliency(image)
    if not ok:
        return np.zeros(image.shape[:2], bool)
    saliency = cv2.GaussianBlur(np.asarray(saliency, np.float32), (0, 0), 1.0)
    scaled = cv2.normalize(saliency, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, binary = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return _largest_region(binary > 0)


def _box(region: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _framed(box: tuple[int, int, int, int], h: int, w: int) -> bool:
    """Whether a box sits at the same inset from all four sides: the inside of a frame."""
    insets = np.array([box[0], box[1], w - box[2], h - box[3]])
    return bool(insets.min() > 0 and insets.max() - insets.min() <= max(1, 0.02 * max(h, w)))


def _plausible(box: tuple[int, int, int, int] | None, h: int, w: int, lo: float, hi: float) -> bool:
    """Whether a box covers between `lo` and `hi` of the image and is not a frame's inside."""
    if box is None:
        return False
    area = (box[2] - box[0]) * (box[3] - box[1]) / (h * w)
    return lo <= area <= hi and not _framed(box, h, w)


def _grabcut_peeled(image: np.ndarray, band: float, ring: str, iterations: int) -> np.ndarray:
    """GrabCut from the border prior; a result that is a frame's inside is cut again, inside
    the frame (twice at most), so that a border frame counts as background."""
    h, w = image.shape[:2]
    y, x = 0, 0
    crop = image
    region = _grabcut(crop, band, ring, iterations)
    for _ in range(_MAX_PEELS):
        box = _box(region)
        ch, cw = crop.shape[:2]
        if (
            box is None
            or not _framed(box, ch, cw)
            or min(box[2] - box[0], box[3] - box[1]) < _MIN_SIDE
        ):
            break
        x, y = x + box[0], y + box[1]
        crop = np.ascontiguousarray(crop[box[1] : box[3], box[0] : box[2]])
        region = _grabcut(crop, band, ring, iterations)
    out = np.zeros((h, w), bool)
    out[y : y + region.shape[0], x : x + region.shape[1]] = region
    return out


def _propose_one(
    image: np.ndarray, method: str, lo: float, hi: float, iterations: int
) -> np.ndarray | None:
    """The proposed region at working size, or None when implausible."""
    h, w = image.shape[:2]
    if method == "grabcut":
        for band, ring in _ATTEMPTS:
            region = _grabcut_peeled(image, band, ring, iterations)
            if _plausible(_box(region), h, w, lo, hi):
                return region
        return None
    region = _saliency_region(image, method)
    return region if _plausible(_box(region), h, w, lo, hi) else None


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected `{name}` to be a real number, received {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"expected `{name}` in [0, 1], received {value}")
    return float(value)


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"expected `{name}` to be a positive int, received {value!r}")
    return int(value)


def propose_masks(
    images: Any,
    *,
    method: str = DEFAULT_METHOD,
    min_area: float = 0.02,
    max_area: float = 0.8,
    work_size: int = 64,
    iterations: int = 3,
) -> ProposedMasks:
    """Proposes one object mask and box per image, from the pixels alone.

    Args:
        images: `(N, H, W, C)` or `(N, H, W)` array (or tensor), uint8 or float in any range;
            1 (grayscale), 3 (RGB) or more channels (the first three are read as RGB); with
            2 channels the first is read as grayscale.
        method: One of `METHODS`; defaults to `"grabcut"` (chosen by
            `benchmarks/bench_proposals.py`, see `docs/mask-free.md`).
        min_area: A proposal whose box covers less than this fraction of the image is
            implausible. Defaults to `0.02` (the smallest objects of the random-scale family,
            `datasets.RANDOM_SCALE`, have boxes of about 4%).
        max_area: A proposal whose box covers more than this fraction is implausible.
            Defaults to `0.8`.
        work_size: The proposal runs on the image shrunk so that its longer side is at most
            this many pixels (the cost grows with its square). Defaults to `64`.
        iterations: GrabCut iterations. Defaults to `3`.

    Returns:
        A `ProposedMasks`: `masks` `(N, H, W)`, `boxes` `(N, 4)`, `fallback` `(N,)` (True
        where the centre box stands in for an implausible proposal) and `method`.

    Raises:
        TypeError, ValueError: For bad `images` or options, naming the argument.
        ImportError: For `"spectral_residual"`/`"fine_grained"` without `cv2.saliency`, or
            any method but `"centre"` without OpenCV.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"expected `method` to be one of {METHODS}, received {method!r}")
    lo, hi = _check_fraction("min_area", min_area), _check_fraction("max_area", max_area)
    if lo >= hi:
        raise ValueError(f"expected `min_area` < `max_area`, received {min_area} and {max_area}")
    work_size = _check_positive("work_size", work_size)
    iterations = _check_positive("iterations", iterations)
    arr = _check_images(images)
    n, height, width = arr.shape[:3]
    boxes = centre_boxes(n, height, width)
    fallback = np.ones(n, bool)
    masks = np.zeros((n, height, width), bool)
    if method != "centre":
        cv2 = _cv2()
        scale = min(1.0, work_size / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        for i in range(n):
            image = _to_rgb_uint8(arr[i])
            if scale < 1.0:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            if min(image.shape[:2]) < _MIN_SIDE:
                continue
            region = _propose_one(image, method, lo, hi, iterations)
            if region is None:
                continue
            if scale < 1.0:
                up = cv2.resize(
                    region.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR
                )
                region = up >= 0.5
            box = _box(region)
            if box is None:
                continue
            masks[i], boxes[i], fallback[i] = region, box, False
    for j in np.flatnonzero(fallback):
        x0, y0, x1, y1 = boxes[j]
        masks[j, y0:y1, x0:x1] = True
    return ProposedMasks(masks, boxes, fallback, method)
