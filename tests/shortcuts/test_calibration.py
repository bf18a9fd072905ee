"""The harm estimate and the calibrated default alarm: the numerics against hand-computed
values and simulation, the estimate against models whose harm is known by construction, and
the default `ShortcutAlarm()` through the callback."""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np
import pytest
from hand_models import (
    PreemptAt,
    PreemptedError,
    background_reader,
    fit_with_callback,
    next_second,
    object_reader,
    probe_set,
)
from tb_events import read_run

import saliency_callback as sc
from saliency_callback.shortcuts import background as bg
from saliency_callback.shortcuts import calibration as cal

# -- numerics ------------------------------------------------------------------------------------


def test_harm_estimate_matches_the_t_interval_by_hand():
    est = cal.harm_estimate(np.array([0.1, 0.3, 0.5, np.nan]), alpha=0.05)
    # mean 0.3, sample sd 0.2, n 3; t(0.95, 2 dof) = 2.919986 (tables)
    half = 2.919986 * 0.2 / math.sqrt(3)
    assert est.n == 3 and est.harm == pytest.approx(0.3)
    assert est.low == pytest.approx(0.3 - half, abs=1e-5)
    assert est.high == pytest.approx(min(0.3 + half, 1.0), abs=1e-5)
    assert est.as_dict() == {"harm": est.harm, "harm_low": est.low, "harm_high": est.high}


def test_harm_estimate_edge_cases_and_bad_alpha():
    empty = cal.harm_estimate(np.array([np.nan, np.nan]))
    assert empty.n == 0 and math.isnan(empty.harm) and math.isnan(empty.low)
    one = cal.harm_estimate(np.array([0.4]))
    assert one.harm == pytest.approx(0.4) and math.isnan(one.low) and math.isnan(one.high)
    same = cal.harm_estimate(np.ones(5))
    assert (same.harm, same.low, same.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        cal.harm_estimate(np.ones(3), alpha=0.7)
    with pytest.raises(TypeError, match="alpha"):
        cal.harm_estimate(np.ones(3), alpha="0.05")  # type: ignore[arg-type]


def test_paired_differences_orient_each_pair_and_drop_uninformative_ones():
    d = cal.paired_differences(
        np.array([True, False, True, False]),
        np.array([False, True, True, False]),
        np.array([0.9, 0.2, 0.5, 0.5]),
        np.array([0.3, 0.6, 0.1, 0.1]),
    )
    np.testing.assert_allclose(d[:2], [0.6, 0.4])
    assert np.isnan(d[2:]).all()


@pytest.mark.parametrize("n", [8, 16, 64])
def test_false_alarm_rate_is_at_most_alpha_whatever_the_probe_count(n):
    """Under "the background costs nothing" (differences symmetric about 0, bounded, many of
    them exactly 0, as for a model that reads the object), `low > 0` happens at most about
    alpha of the time; at a true harm of 0.4 it happens more often with more probes."""
    rng = np.random.default_rng(n)
    reps = 4000
    null = rng.uniform(-0.3, 0.3, (reps, n)) * (rng.random((reps, n)) < 0.6)
    lows = np.array([cal.harm_estimate(row).low for row in null])
    rate = float(np.mean(lows > 0))
    assert rate <= cal.DEFAULT_ALPHA + 3 * math.sqrt(0.05 * 0.95 / reps)
    assert rate > 0.01  # the bound is not so wide that it never fires (not a vacuous test)
    power = {
        m: np.mean(
            [
                cal.harm_estimate(np.clip(rng.normal(0.4, 0.5, m), -1, 1)).low > 0.05
                for _ in range(400)
            ]
        )
        for m in (8, 64)
    }
    assert power[64] > power[8] and power[64] > 0.95


# -- the estimate against models whose harm is known by construction ----------------------------

K, N, S = 3, 12, 10


def mixture_probes():
    """Background in the class colour (value 1), a 4x4 object in its class colour at 0.5."""
    rng = np.random.default_rng(3)
    labels = np.arange(N) % K
    images = np.zeros((N, S, S, 3), np.float32)
    masks = np.zeros((N, S, S), bool)
    for i, c in enumerate(labels):
        y, x = rng.integers(0, S - 4, 2)
        masks[i, y : y + 4, x : x + 4] = True
        images[i] = np.eye(3, dtype=np.float32)[c]
        images[i][masks[i]] = 0.5 * np.eye(3, dtype=np.float32)[c]
    return images, labels, masks


def mixture_model(images: np.ndarray, weight: float) -> np.ndarray:
    """Probabilities `weight * onehot(background class) + (1 - weight) * onehot(object class)`,
    the classes read from the pixels (value 1: background, 0.5: object; no object pixels: the
    object's class is the background's). Its harm is `weight` by construction."""
    out = np.zeros((len(images), K))
    for i, x in enumerate(images):
        flat = x.reshape(-1, 3)
        back, obj = flat[np.isclose(flat.max(1), 1.0)], flat[np.isclose(flat.max(1), 0.5)]
        obj_class = int(np.argmax(obj.mean(0))) if len(obj) else -1
        bg_class = int(np.argmax(back.mean(0))) if len(back) else obj_class
        obj_class = bg_class if obj_class < 0 else obj_class
        out[i, bg_class] += weight
        out[i, obj_class] += 1 - weight
    return out


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("labelled", [True, False])
def test_harm_equals_the_weight_of_the_background_in_a_mixture_model(weight, labelled):
    images, labels, masks = mixture_probes()
    test = bg.BackgroundTest.build(images, masks, labels if labelled else None)
    original = mixture_model(images, weight)
    variants = test.split(mixture_model(test.batch, weight))
    values, per_probe = bg.score(test, original, variants)
    assert values["harm"] == pytest.approx(weight, abs=1e-9)
    assert values["harm_low"] == pytest.approx(weight, abs=1e-9)  # no spread: exact
    informative = np.isfinite(per_probe["harm"])
    assert informative.sum() >= 4


def sensitive_probes(seed: int, n: int = 16):
    """Probes whose background colour (value 1) is drawn independently of the label, and a 4x4
    object in the class colour (0.5): no class-background association in the probes."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % K)
    pushes = rng.integers(0, K, n)
    images = np.zeros((n, S, S, 3), np.float32)
    masks = np.zeros((n, S, S), bool)
    for i, (c, b) in enumerate(zip(labels, pushes, strict=True)):
        y, x = rng.integers(0, S - 4, 2)
        masks[i, y : y + 4, x : x + 4] = True
        images[i] = np.eye(3, dtype=np.float32)[b]
        images[i][masks[i]] = 0.5 * np.eye(3, dtype=np.float32)[c]
    return images, labels, masks


@pytest.mark.parametrize("labelled", [True, False])
def test_a_background_sensitive_model_with_no_learned_association_is_not_alarmed(labelled):
    """The null that holds for real models: every background pushes the prediction (here by 0.3
    towards the class of its colour), but the backgrounds are independent of the classes, so
    the model loses nothing where the background "disagrees". Over 300 probe sets the estimate
    is centred on 0 and its lower bound passes 0.05 at most about 5% of the time; sorting the
    backgrounds by what the model reads from each alone (the former estimate) selects exactly
    the pushed composites and finds the push (0.3) instead."""
    lows, harms, read = [], [], []
    for seed in range(300):
        images, labels, masks = sensitive_probes(seed)
        test = bg.BackgroundTest.build(images, masks, labels if labelled else None)
        original = mixture_model(images, 0.3)
        variants = test.split(mixture_model(test.batch, 0.3))
        values, _ = bg.score(test, original, variants)
        lows.append(values["harm_low"])
        harms.append(values["harm"])
        # The former sorting, by hand: which partner's background alone reads as the class.
        y = labels if labelled else bg.predicted_classes(original)
        says = bg.predicted_classes(variants["only_bg"])
        same, rand = test.partners["mixed_same"], test.partners["mixed_rand"]
        p_same = bg.class_probability(variants["mixed_same"], y)
        p_rand = bg.class_probability(variants["mixed_rand"], y)
        d = cal.paired_differences(says[same] == y, says[rand] == y, p_same, p_rand)
        read.append(np.nanmean(d))
    lows_ = np.array(lows)
    assert abs(np.nanmean(harms)) < 0.03
    assert np.mean(lows_ > cal.DEFAULT_MARGIN) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)
    assert np.isfinite(lows_).mean() > 0.9  # the estimate exists (not a vacuous pass)
    assert np.nanmean(read) == pytest.approx(0.3, abs=0.02)  # the selection effect, measured


def test_class_probability_handles_logits_and_one_sigmoid_unit():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_allclose(bg.class_probability(probs, np.array([1, 0])), [0.8, 0.6])
    logits = np.log(probs) + 3.0  # rows no longer sum to 1: softmax first
    np.testing.assert_allclose(bg.class_probability(logits, np.array([1, 0])), [0.8, 0.6])
    sigmoid = np.array([[0.9], [0.25]])
    np.testing.assert_allclose(bg.class_probability(sigmoid, np.array([1, 0])), [0.9, 0.75])


# -- the default alarm through the callback --------------------------------------------------------


def test_the_default_alarm_fires_on_a_background_reader_with_the_estimate(tmp_path):
    images, labels, masks = probe_set(object_reads_class=False)
    cb, history, run = fit_with_callback(
        background_reader(), tmp_path, images, labels, masks, alarm=sc.ShortcutAlarm()
    )
    last = {tag: values[-1][1] for tag, values in run.scalars.items()}
    assert last["saliency/background/harm"] > 0.95
    assert 0.9 < last["saliency/background/harm_low"] <= last["saliency/background/harm"]
    assert last["saliency/background/harm_high"] >= last["saliency/background/harm"]
    assert len(history.history["saliency_background_harm_low"]) == 2
    assert "saliency/background/reliance" in last and "saliency/background/gap" in last
    assert [e.step for e in cb.alarm_events] == [0]
    message = cb.alarm_events[0].message
    assert "estimated to lose 100% accuracy" in message and "95% bounds" in message


def test_the_default_alarm_works_without_labels(tmp_path):
    images, _, masks = probe_set(object_reads_class=False)
    cb = sc.SaliencyCallback(
        images,
        masks=masks,
        log_dir=str(tmp_path),
        runtime=sc.Runtime(strict=True),
        alarm=sc.ShortcutAlarm(),
    )
    model = background_reader()
    model.fit(images, np.arange(len(images)) % 3, epochs=1, verbose=0, callbacks=[cb])
    assert [e.step for e in cb.alarm_events] == [0]


def test_the_default_alarm_stays_quiet_on_an_object_reader(tmp_path):
    images, labels, masks = probe_set(object_reads_class=True)
    cb, _, run = fit_with_callback(
        object_reader(), tmp_path, images, labels, masks, alarm=sc.ShortcutAlarm()
    )
    lows = [v for _, v in run.scalars["saliency/background/harm_low"]]
    harms = [v for _, v in run.scalars["saliency/background/harm"]]
    assert len(lows) == 2 and all(np.isfinite(lows))  # measured at both epochs, on every probe
    assert [v for _, v in run.scalars["saliency/background/harm_probes"]] == [9.0, 9.0]
    # The object reader's class probability is the same on any grey background: every term 0.
    assert harms == pytest.approx([0.0, 0.0], abs=1e-6)
    assert max(lows) <= 0.05 and cb.alarm_events == []


def test_a_resumed_run_fires_the_default_alarm_where_an_uninterrupted_one_does(tmp_path):
    """The default alarm's streak (patience 3) is rebuilt from the logged `harm_low` after a
    preemption, so it fires at the same step as without one."""
    images, labels, masks = probe_set(object_reads_class=False)

    def fit(name, preempt_at):
        log_dir = tmp_path / name
        cb = sc.SaliencyCallback(
            images,
            labels=labels,
            masks=masks,
            log_dir=str(log_dir),
            runtime=sc.Runtime(strict=True),
            alarm=sc.ShortcutAlarm(patience=3),
        )
        parts = [keras.callbacks.BackupAndRestore(str(tmp_path / f"{name}-backup")), cb]
        model = background_reader()  # frozen: the same harm every epoch
        model.fit(images, labels, epochs=5, verbose=0, callbacks=[*parts, PreemptAt(preempt_at)])
        return log_dir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the alarm's warning
        straight = fit("straight", -1)
        with pytest.raises(PreemptedError):
            fit("resumed", 1)
        next_second()  # the resumed event file sorts after this one
        resumed = fit("resumed", -1)
    fired = [
        [s for s, v in read_run(str(d / "saliency")).scalars["saliency/alarm"] if v == 1.0]
        for d in (straight, resumed)
    ]
    assert fired == [[2], [2]]


def test_the_logged_bounds_are_the_t_interval_of_terms_recomputed_by_hand(tmp_path):
    """Through `fit`, with probes whose terms differ (so the bounds differ from the estimate):
    the logged `harm`, `harm_low` and `harm_high` equal the mean and the one-sided 95%
    Student-t bounds of terms computed here from composites built by hand (each object's grey
    pixels over its partners' uniform backgrounds) and the model's own predictions."""
    from scipy import stats

    images, labels, masks = probe_set(object_reads_class=False)
    strength = np.linspace(0.25, 1.0, len(images), dtype=np.float32)  # how coloured each
    background = images.copy()  # background is: the model's confidence differs per probe
    images = (0.5 + strength[:, None, None, None] * (images - 0.5)).astype(np.float32)
    images[masks] = background[masks]  # the objects stay grey 0.5
    model = background_reader()
    *_, run = fit_with_callback(model, tmp_path, images, labels, masks, alarm=sc.ShortcutAlarm())
    same = bg.pair_probes(np.ones(len(images), bool), labels, same=True)
    rand = bg.pair_probes(np.ones(len(images), bool), labels, same=False)

    def on_background_of(partners):
        out = images.copy()
        for i, j in enumerate(partners):
            colour = images[j][~masks[j]][0]  # each background is one colour
            out[i][~masks[i]] = colour
        return out

    def p_class(x):
        return model.predict(x, verbose=0)[np.arange(len(x)), labels]

    terms = p_class(on_background_of(same)) - p_class(on_background_of(rand))
    assert terms.std() > 0.05  # the probes differ: a swapped bound would show
    half = stats.t.ppf(0.95, len(terms) - 1) * terms.std(ddof=1) / np.sqrt(len(terms))
    logged = {k: run.scalars[f"saliency/background/{k}"][-1][1] for k in ("harm", "harm_low")}
    logged["harm_high"] = run.scalars["saliency/background/harm_high"][-1][1]
    assert logged["harm"] == pytest.approx(terms.mean(), abs=1e-5)
    assert logged["harm_low"] == pytest.approx(max(terms.mean() - half, -1), abs=1e-5)
    assert logged["harm_high"] == pytest.approx(min(terms.mean() + half, 1), abs=1e-5)
