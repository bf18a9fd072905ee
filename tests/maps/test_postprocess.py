"""Channel reductions and normalisation against direct numpy definitions."""

from __future__ import annotations

import numpy as np
import pytest

from saliency_callback.maps.postprocess import check_options, normalize_maps, reduce_channels

RNG = np.random.default_rng(0)
ATTR = RNG.normal(size=(3, 5, 4, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "reduction,expected",
    [
        ("max_abs", np.abs(ATTR).max(axis=-1)),
        ("sum_abs", np.abs(ATTR).sum(axis=-1)),
        ("signed", ATTR.sum(axis=-1)),
    ],
)
def test_reductions_match_their_definitions(reduction, expected):
    out = reduce_channels(ATTR, reduction)
    assert out.dtype == np.float32 and out.shape == (3, 5, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    single = reduce_channels(ATTR[..., :1], reduction)
    np.testing.assert_allclose(
        single, ATTR[..., 0] if reduction == "signed" else np.abs(ATTR[..., 0])
    )


def test_minmax_percentile_and_signed_normalisation():
    maps = np.stack([np.arange(100, dtype=np.float32).reshape(10, 10), np.full((10, 10), 3.0)])
    mm = normalize_maps(maps, "minmax")
    np.testing.assert_allclose(mm[0], maps[0] / 99.0, rtol=1e-6)
    assert (mm[1] == 0).all()  # a constant map becomes zeros, not NaN
    pc = normalize_maps(maps, "percentile", percentile=50)
    hi = np.percentile(maps[0], 50)
    np.testing.assert_allclose(pc[0], np.clip(maps[0] / hi, 0, 1), rtol=1e-6)
    signed = normalize_maps(np.array([[[-2.0, 1.0]]], np.float32), "minmax", signed=True)
    np.testing.assert_allclose(signed, [[[-1.0, 0.5]]])
    np.testing.assert_array_equal(normalize_maps(maps, None), maps)


def test_option_errors():
    with pytest.raises(ValueError, match="Unknown `reduction`: received 'l2'"):
        check_options("l2", "minmax", 99)
    with pytest.raises(ValueError, match="Unknown `normalize`"):
        check_options("max_abs", "z", 99)
    with pytest.raises(ValueError, match="percentile=101"):
        check_options("max_abs", "percentile", 101)
