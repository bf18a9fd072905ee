"""The array types and argument checks shared by the drawing modules (`render`, `captions`,
`images`): each check raises a `TypeError`/`ValueError` naming the argument."""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt

Uint8Array = npt.NDArray[np.uint8]
Float32Array = npt.NDArray[np.float32]

RANGE_TOLERANCE = 1e-3  # slack when inferring the value range of float images.


def check_positive_int(name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"expected `{name}` to be an integer, received {value!r}")
    if value < 1:
        raise ValueError(f"expected `{name}` >= 1, received {value!r}")
    return int(value)


def check_tiles(min_tile: Any, max_tile: Any) -> tuple[int, int]:
    lo = check_positive_int("min_tile", min_tile)
    hi = check_positive_int("max_tile", max_tile)
    if hi < lo:
        raise ValueError(
            f"expected `max_tile` >= `min_tile`, received min_tile={lo}, max_tile={hi}"
        )
    return lo, hi


def is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_sigma(sigma: Any) -> float:
    if not is_real(sigma):
        raise TypeError(f"expected `sigma` to be a number, received {sigma!r}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"expected `sigma` >= 0 (pixels), received {sigma!r}")
    return float(sigma)


def check_alpha(alpha: Any) -> float:
    if not is_real(alpha):
        raise TypeError(f"expected `alpha` to be a number in [0, 1], received {alpha!r}")
    if not 0.0 <= alpha <= 1.0:  # also rejects NaN
        raise ValueError(f"expected `alpha` in [0, 1], received {alpha!r}")
    return float(alpha)


def check_value_range(value_range: Any) -> tuple[float, float] | None:
    if value_range is None:
        return None
    try:
        lo, hi = value_range
    except (TypeError, ValueError):
        raise TypeError(
            f"expected `value_range` to be None or a pair (low, high), received {value_range!r}"
        ) from None
    if not (is_real(lo) and is_real(hi)):
        raise TypeError(f"expected `value_range` to hold two numbers, received {value_range!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(
            f"expected `value_range` = (low, high) with finite low < high, received {value_range!r}"
        )
    return float(lo), float(hi)


def validate_colormap(name: Any) -> str:
    """Checks that `name` is a registered Matplotlib colormap.

    Meant to be called by callers at construction time, so that a typo fails
    immediately instead of at the first rendering epoch.

    Args:
        name: Colormap name, e.g. `"inferno"`, `"viridis"`, `"jet"`, `"RdBu_r"`.

    Returns:
        The name, unchanged.

    Raises:
        TypeError: If `name` is not a string.
        ValueError: If no colormap of that name is registered in `matplotlib.colormaps`.
    """
    if not isinstance(name, str):
        raise TypeError(f"expected `colormap` to be a string, received {name!r}")
    if name not in matplotlib.colormaps:
        close = difflib.get_close_matches(name, list(matplotlib.colormaps), n=3)
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(
            f"unknown `colormap`, received {name!r}; expected a name registered in "
            f"`matplotlib.colormaps` such as 'inferno', 'viridis', 'magma' or 'jet'.{hint}"
        )
    return name
