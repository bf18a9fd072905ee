"""Tests for saliency_callback.maps.metrics against hand-computed and brute-force truth."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from saliency_callback.maps.metrics import (
    chance_level,
    check_maps_and_masks,
    check_masks,
    hotspot,
    mass_in_mask,
    pointing_game,
    rank_in_mask,
)

METRICS = [mass_in_mask, pointing_game, rank_in_mask]


def _left_half_mask(n: int = 1, size: int = 4) -> np.ndarray:
    masks = np.zeros((n, size, size), dtype=bool)
    masks[:, :, : size // 2] = True
    return masks


# --------------------------------------------------------------------------- validation


def test_check_converts_dtypes() -> None:
    maps, masks = check_maps_and_masks(
        np.ones((2, 3, 3), dtype=np.int32), np.eye(3, dtype=np.float32)[None].repeat(2, 0)
    )
    assert maps.dtype == np.float64
    assert masks.dtype == np.bool_
    np.testing.assert_array_equal(masks[0], np.eye(3, dtype=bool))


def test_check_accepts_integer_masks() -> None:
    masks = check_masks(np.array([[[0, 1], [1, 0]]], dtype=np.uint8))
    np.testing.assert_array_equal(masks, [[[False, True], [True, False]]])


def test_shape_mismatch_message_names_masks_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"`masks` of shape \(8, 64, 64\), received \(8, 32, 32\)"):
        mass_in_mask(np.zeros((8, 64, 64)), np.zeros((8, 32, 32), dtype=bool))


@pytest.mark.parametrize("metric", METRICS)
def test_maps_wrong_rank(metric) -> None:
    with pytest.raises(ValueError, match=r"`maps` of rank 3 .*received shape \(2, 4, 4, 1\)"):
        metric(np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4), dtype=bool))


def test_masks_wrong_rank() -> None:
    with pytest.raises(ValueError, match=r"`masks` of rank 3 .*received shape \(4, 4\)"):
        rank_in_mask(np.zeros((1, 4, 4)), np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"`masks` of rank 3"):
        chance_level(np.zeros((4, 4), dtype=bool))


@pytest.mark.parametrize("bad_value", [0.5, 2, -1, np.nan])
def test_non_binary_masks_rejected(bad_value: float) -> None:
    masks = np.zeros((1, 3, 3))
    masks[0, 1, 1] = bad_value
    with pytest.raises(ValueError, match=r"`masks` to be boolean or to contain only 0 and 1"):
        pointing_game(np.zeros((1, 3, 3)), masks)


def test_nan_and_inf_in_maps_rejected() -> None:
    maps = np.zeros((1, 3, 3))
    maps[0, 0, 0] = np.nan
    maps[0, 0, 1] = np.inf
    with pytest.raises(ValueError, match=r"`maps` .*finite.*received 1 NaN and 1 infinite"):
        mass_in_mask(maps, np.ones((1, 3, 3), dtype=bool))


def test_unsupported_dtypes_rejected() -> None:
    with pytest.raises(TypeError, match=r"`maps` .*received dtype bool"):
        mass_in_mask(np.ones((1, 2, 2), dtype=bool), np.ones((1, 2, 2), dtype=bool))
    with pytest.raises(TypeError, match=r"`masks` .*received dtype"):
        mass_in_mask(np.ones((1, 2, 2)), np.full((1, 2, 2), "a"))


@pytest.mark.parametrize("tolerance", [-1, 1.5, True])
def test_invalid_tolerance(tolerance) -> None:
    maps, masks = np.zeros((1, 3, 3)), np.ones((1, 3, 3), dtype=bool)
    with pytest.raises((TypeError, ValueError), match="`tolerance`"):
        pointing_game(maps, masks, tolerance=tolerance)
    with pytest.raises((TypeError, ValueError), match="`tolerance`"):
        chance_level(masks, tolerance=tolerance)


# --------------------------------------------------------------------------- mass_in_mask


def test_mass_all_inside_half_inside_and_outside() -> None:
    masks = _left_half_mask(3)
    maps = np.zeros((3, 4, 4))
    maps[0, :, :2] = 1.0  # all mass inside
    maps[1] = 1.0  # uniform: half inside
    maps[2, :, 2:] = 5.0  # all mass outside
    np.testing.assert_array_equal(mass_in_mask(maps, masks), [1.0, 0.5, 0.0])


def test_mass_clips_negative_values() -> None:
    masks = _left_half_mask(1)
    maps = np.zeros((1, 4, 4))
    maps[0, 0, 0] = 3.0  # inside
    maps[0, 0, 3] = 1.0  # outside
    maps[0, 1, 3] = -100.0  # outside, negative: ignored rather than cancelling mass
    maps[0, 1, 0] = -100.0  # inside, negative: ignored as well
    np.testing.assert_array_equal(mass_in_mask(maps, masks), [0.75])


def test_mass_nan_cases_and_full_mask() -> None:
    maps = np.ones((4, 3, 3))
    maps[2] = 0.0  # no mass at all
    maps[3] = -1.0  # only negative mass
    masks = np.ones((4, 3, 3), dtype=bool)
    masks[1] = False  # empty mask
    result = mass_in_mask(maps, masks)
    assert result.dtype == np.float64
    assert result.shape == (4,)
    assert result[0] == 1.0  # full mask
    assert np.isnan(result[1:]).all()


def test_mass_does_not_warn_on_nan_cases() -> None:
    with np.errstate(all="raise"):
        result = mass_in_mask(np.zeros((2, 3, 3)), np.zeros((2, 3, 3), dtype=bool))
    assert np.isnan(result).all()


# --------------------------------------------------------------------------- pointing_game


def test_pointing_hit_and_miss() -> None:
    masks = _left_half_mask(2)
    maps = np.zeros((2, 4, 4))
    maps[0, 2, 1] = 1.0  # max inside
    maps[1, 2, 3] = 1.0  # max outside
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0, 0.0])


def test_pointing_uses_raw_map_even_if_all_negative() -> None:
    masks = _left_half_mask(1)
    maps = np.full((1, 4, 4), -5.0)
    maps[0, 3, 0] = -1.0  # the (negative) maximum, inside
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0])


def test_pointing_tolerance_turns_near_miss_into_hit() -> None:
    masks = np.zeros((1, 9, 9), dtype=bool)
    masks[0, 4, 2] = True
    maps = np.zeros((1, 9, 9))
    maps[0, 4, 4] = 1.0  # two pixels to the right of the object
    assert pointing_game(maps, masks)[0] == 0.0
    assert pointing_game(maps, masks, tolerance=1)[0] == 0.0
    assert pointing_game(maps, masks, tolerance=2)[0] == 1.0


def test_pointing_tolerance_is_a_disk_not_a_square() -> None:
    masks = np.zeros((1, 9, 9), dtype=bool)
    masks[0, 4, 4] = True
    maps = np.zeros((2, 9, 9))
    maps[0, 6, 6] = 1.0  # diagonal offset (2, 2): distance 2.83 > 2
    maps[1, 6, 5] = 1.0  # offset (2, 1): distance 2.24 > 2
    masks = np.repeat(masks, 2, axis=0)
    np.testing.assert_array_equal(pointing_game(maps, masks, tolerance=2), [0.0, 0.0])
    np.testing.assert_array_equal(pointing_game(maps, masks, tolerance=3), [1.0, 1.0])


def test_pointing_tolerance_does_not_leak_between_images() -> None:
    masks = np.zeros((2, 5, 5), dtype=bool)
    masks[0] = True  # image 0 full; image 1 empty except a far corner
    masks[1, 0, 0] = True
    maps = np.zeros((2, 5, 5))
    maps[1, 4, 4] = 1.0
    np.testing.assert_array_equal(pointing_game(maps, masks, tolerance=2), [1.0, 0.0])


def test_pointing_ties_give_fraction_and_constant_map_gives_chance() -> None:
    masks = _left_half_mask(2)
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0] = maps[0, 0, 1] = maps[0, 0, 2] = 7.0  # 2 of 3 maxima inside
    maps[1] = 3.0  # constant map
    np.testing.assert_allclose(pointing_game(maps, masks), [2 / 3, 0.5])
    np.testing.assert_allclose(pointing_game(maps[1:], masks[1:]), chance_level(masks[1:]))


def test_pointing_empty_mask_nan() -> None:
    result = pointing_game(np.ones((1, 3, 3)), np.zeros((1, 3, 3)), tolerance=2)
    assert np.isnan(result).all()


# --------------------------------------------------------------------------- rank_in_mask


def test_rank_exact_hand_example() -> None:
    mask = np.array([[[1, 1, 0], [0, 0, 1]]], dtype=bool)  # K = 3
    maps = np.array([[[9.0, 1.0, 8.0], [0.0, 2.0, 7.0]]])
    # Top 3: 9 (in), 8 (out), 7 (in) -> 2/3.
    np.testing.assert_allclose(rank_in_mask(maps, mask), [2 / 3])


def test_rank_ties_at_kth_value_hand_example() -> None:
    mask = np.array([[[0, 1, 0], [1, 0, 0]]], dtype=bool)  # K = 2
    maps = np.array([[[3.0, 2.0, 2.0], [2.0, 1.0, 0.0]]])
    # 3 (out) is certain; one more slot goes to one of three tied 2s, two of them
    # inside: expected inside = 2/3, so the score is (2/3) / 2 = 1/3.
    np.testing.assert_allclose(rank_in_mask(maps, mask), [1 / 3])


def test_rank_constant_map_gives_chance_and_full_mask_gives_one() -> None:
    masks = np.zeros((2, 5, 5), dtype=bool)
    masks[0, 1:3, 1:4] = True
    masks[1] = True
    maps = np.full((2, 5, 5), 0.3)
    np.testing.assert_allclose(rank_in_mask(maps, masks), [6 / 25, 1.0])


def test_rank_perfect_and_worst() -> None:
    masks = _left_half_mask(2)
    maps = np.zeros((2, 4, 4))
    maps[0, :, :2] = np.arange(8).reshape(4, 2) + 1.0  # all top-8 inside
    maps[1, :, 2:] = 1.0  # all top-8 outside
    np.testing.assert_array_equal(rank_in_mask(maps, masks), [1.0, 0.0])


def test_rank_empty_mask_nan() -> None:
    assert np.isnan(rank_in_mask(np.ones((1, 3, 3)), np.zeros((1, 3, 3)))).all()


def _brute_force_tie_expectations(
    flat_map: np.ndarray, flat_mask: np.ndarray
) -> tuple[float, float]:
    """Average pointing/rank scores over every tie-breaking order of the pixels."""
    k = int(flat_mask.sum())
    pointing, rank = [], []
    for order in itertools.permutations(range(flat_map.size)):
        tie_breaker = np.empty(flat_map.size)
        tie_breaker[list(order)] = np.arange(flat_map.size)
        ranked = np.lexsort((tie_breaker, -flat_map))  # by value desc, then tie-breaker
        pointing.append(float(flat_mask[ranked[0]]))
        rank.append(flat_mask[ranked[:k]].mean())
    return float(np.mean(pointing)), float(np.mean(rank))


def test_ties_match_brute_force_over_all_tie_breakings() -> None:
    rng = np.random.default_rng(0)
    n, h, w = 12, 2, 3
    maps = rng.integers(0, 3, size=(n, h, w)).astype(float)  # many ties
    masks = rng.random((n, h, w)) < 0.5
    masks[:, 0, 0] = True  # non-empty
    expected = np.array(
        [
            _brute_force_tie_expectations(m.ravel(), k.ravel())
            for m, k in zip(maps, masks, strict=True)
        ]
    )
    np.testing.assert_allclose(pointing_game(maps, masks), expected[:, 0])
    np.testing.assert_allclose(rank_in_mask(maps, masks), expected[:, 1])


# --------------------------------------------------------------------------- chance_level


def test_chance_level_is_area_fraction() -> None:
    masks = np.zeros((3, 4, 5), dtype=bool)
    masks[0, 0, :3] = True
    masks[1] = True
    result = chance_level(masks)
    np.testing.assert_allclose(result[:2], [3 / 20, 1.0])
    assert np.isnan(result[2])


def test_chance_level_with_tolerance_is_dilated_area() -> None:
    masks = np.zeros((1, 7, 7), dtype=bool)
    masks[0, 3, 3] = True
    # Disk of radius 1: the centre and its 4 neighbours.
    np.testing.assert_allclose(chance_level(masks, tolerance=1), [5 / 49])


def test_random_maps_score_chance_on_average() -> None:
    rng = np.random.default_rng(1)
    n, size = 3000, 12
    masks = np.zeros((n, size, size), dtype=bool)
    masks[:, 2:8, 3:9] = True  # 36 / 144 = 0.25
    maps = rng.random((n, size, size))
    chance = float(chance_level(masks).mean())
    assert chance == 0.25
    for metric in METRICS:
        assert abs(float(np.mean(metric(maps, masks))) - chance) < 0.02, metric.__name__
    assert abs(float(np.mean(pointing_game(maps, masks, tolerance=1))) - 0.25) > 0.05
    np.testing.assert_allclose(
        np.mean(pointing_game(maps, masks, tolerance=1)),
        chance_level(masks, tolerance=1).mean(),
        atol=0.03,
    )


def test_saliency_on_object_scores_above_chance() -> None:
    rng = np.random.default_rng(2)
    masks = np.zeros((200, 16, 16), dtype=bool)
    masks[:, 4:10, 4:10] = True
    maps = rng.random((200, 16, 16)) + 2.0 * masks
    chance = 36 / 256
    for metric in METRICS:
        assert np.mean(metric(maps, masks)) > 2 * chance, metric.__name__


def test_empty_batch_and_dtypes() -> None:
    for metric in METRICS:
        result = metric(np.zeros((0, 4, 4)), np.zeros((0, 4, 4), dtype=bool))
        assert result.shape == (0,)
        assert result.dtype == np.float64
    result = mass_in_mask(np.ones((2, 3, 3), dtype=np.float32), np.ones((2, 3, 3)))
    assert result.dtype == np.float64
    assert result.shape == (2,)


def _blobs(positions, size=32, side=4):
    maps = np.zeros((len(positions), size, size))
    for m, (y, x) in zip(maps, positions, strict=True):
        m[y : y + side, x : x + side] = 1.0
    return maps


def test_hotspot_separates_a_fixed_position_from_random_positions():
    from saliency_callback.maps.metrics import hotspot

    rng = np.random.default_rng(0)
    random_places = _blobs(rng.integers(0, 28, (16, 2)))
    fixed = _blobs([(0, 0)] * 16)
    score, chance = hotspot(fixed)
    assert score == pytest.approx(1.0) and chance < 0.5
    score, chance = hotspot(random_places)
    assert abs(score - chance) < 0.1  # no common position: the score is its chance level
    # A fixed cue next to a randomly placed object lifts the score above chance.
    both = random_places + 3 * _blobs([(0, 0)] * 16, side=3)
    score, chance = hotspot(both)
    assert score > chance + 0.3
    # Maps spread over everything (a colour shortcut) have no position to find.
    score, chance = hotspot(rng.random((16, 32, 32)))
    assert abs(score - chance) < 0.05
    # Scale and negative values do not matter (the positive part is normalised per map).
    np.testing.assert_allclose(hotspot(fixed * 7 - 0.0), hotspot(fixed))
    assert np.isnan(hotspot(np.zeros((3, 8, 8)))[0])  # no mass: no answer
    with pytest.raises(ValueError, match="top"):
        hotspot(fixed, top=0)
    with pytest.raises(ValueError, match="rank 3"):
        hotspot(np.zeros((8, 8)))


def test_hotspot_chance_is_the_mean_of_circularly_shifted_maps():
    """The chance level recomputed by hand: each map rolled by its own seeded shift."""
    rng = np.random.default_rng(5)
    maps = (rng.random((6, 32, 32)) ** 4).astype(np.float32)  # 32 px: no pooling
    score, chance = hotspot(maps, top=0.1, draws=3, seed=11)
    positive = maps.astype(np.float64) / maps.sum(axis=(1, 2), dtype=np.float64)[:, None, None]
    k = math.ceil(0.1 * 32 * 32)

    def top_share(m):
        return np.sort(m.ravel())[-k:].sum()

    own = np.mean([top_share(m) for m in positive])
    shifts = np.random.default_rng(11)
    expected = []
    for _ in range(3):
        dy, dx = shifts.integers(0, 32, 6), shifts.integers(0, 32, 6)
        moved = [np.roll(m, (y, x), axis=(0, 1)) for m, y, x in zip(positive, dy, dx, strict=True)]
        expected.append(top_share(np.mean(moved, axis=0)) / own)
    np.testing.assert_allclose(chance, np.mean(expected), rtol=1e-12)
    np.testing.assert_allclose(score, top_share(positive.mean(axis=0)) / own, rtol=1e-12)
