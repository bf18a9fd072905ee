"""The constructor: at most 15 parameters, the option objects, and the former keywords.

Every former keyword must still work for one release, warn with the new spelling, and do
exactly what the new spelling does: checked on the built objects and, for a fit, on the event
files both spellings write (read back with TensorBoard's reader).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import keras
import numpy as np
import pytest
from conftest import images, tiny_cnn
from tb_events import read_run

import saliency_callback as sc
from saliency_callback.training.options import DISPLAY_KEYWORDS, RUNTIME_KEYWORDS

N, SHAPE = 4, (12, 12, 3)


def masks(n=N):
    m = np.zeros((n, *SHAPE[:2]), bool)
    m[:, 3:9, 3:9] = True
    return m


def test_at_most_15_parameters_and_the_objects_are_exported():
    params = inspect.signature(sc.SaliencyCallback.__init__).parameters.values()
    named = [p.name for p in params if p.kind is not p.VAR_KEYWORD and p.name != "self"]
    assert len(named) <= 15, named
    assert {"display", "runtime", "alarm"} <= set(named)
    assert {"Display", "Runtime", "ShortcutAlarm"} <= set(sc.__all__)
    assert sc.Display is sc.options.Display and sc.Runtime is sc.options.Runtime


# A non-default value for every former keyword: (keyword, value).
DISPLAY_CASES = [
    ("reduction", "sum_abs"),
    ("normalize", "percentile"),
    ("percentile", 90.0),
    ("sigma", 2.0),
    ("colormap", "viridis"),
    ("alpha", 0.8),
    ("min_tile", 32),
    ("max_tile", 128),
    ("value_range", (0.0, 2.0)),
    ("overview", False),
    ("timeline", False),
    ("overview_pixels", 2**18),
]
RUNTIME_CASES = [
    ("batch_size", 8),
    ("background_writer", False),
    ("max_step_bytes", 2**20),
    ("log_before_training", True),
    ("run_name", "other"),
    ("strict", True),
]


def test_the_cases_cover_every_former_keyword():
    assert {k for k, _ in DISPLAY_CASES} == set(DISPLAY_KEYWORDS)
    assert {k for k, _ in RUNTIME_CASES} == set(RUNTIME_KEYWORDS)


def _old(tmp_path, **kw):
    with pytest.warns(DeprecationWarning) as caught:
        cb = sc.SaliencyCallback(images(N, SHAPE), masks=masks(), log_dir=str(tmp_path), **kw)
    return cb, [str(w.message) for w in caught if w.category is DeprecationWarning]


@pytest.mark.parametrize("key,value", DISPLAY_CASES, ids=[k for k, _ in DISPLAY_CASES])
def test_a_former_display_keyword_maps_onto_display(tmp_path, key, value):
    old, messages = _old(tmp_path, **{key: value})
    new = sc.SaliencyCallback(
        images(N, SHAPE), masks=masks(), log_dir=str(tmp_path), display=sc.Display(**{key: value})
    )
    assert messages == [
        f"SaliencyCallback: {key}={value!r} is deprecated and will be removed in the next "
        f"release; pass display=sc.Display({key}={value!r})"
    ]
    assert old.display == new.display and getattr(old.display, key) == getattr(new.display, key)
    assert old.display != sc.Display()  # the value arrived
    assert old.renderer == new.renderer
    attrs = ("reduction", "normalize", "percentile", "overview", "timeline", "overview_pixels")
    assert [getattr(old, a) for a in attrs] == [getattr(new, a) for a in attrs]


@pytest.mark.parametrize("key,value", RUNTIME_CASES, ids=[k for k, _ in RUNTIME_CASES])
def test_a_former_runtime_keyword_maps_onto_runtime(tmp_path, key, value):
    old, messages = _old(tmp_path, **{key: value})
    new = sc.SaliencyCallback(
        images(N, SHAPE), masks=masks(), log_dir=str(tmp_path), runtime=sc.Runtime(**{key: value})
    )
    assert messages == [
        f"SaliencyCallback: {key}={value!r} is deprecated and will be removed in the next "
        f"release; pass runtime=sc.Runtime({key}={value!r})"
    ]
    assert old.runtime == new.runtime != sc.Runtime()
    attrs = ("batch_size", "max_step_bytes", "log_before_training", "strict")
    assert [getattr(old, a) for a in attrs] == [getattr(new, a) for a in attrs]
    assert old.writer.path == new.writer.path
    assert old._worker.background == new._worker.background


ALARM_CASES = [
    (dict(alarm_threshold=0.4), sc.ShortcutAlarm(0.4, monitor="mass_in_mask")),
    (
        dict(alarm_threshold=1.5, alarm_relative=True),
        sc.ShortcutAlarm(1.5, monitor="mass_in_mask", relative_to="chance"),
    ),
    (dict(alarm_threshold=0.4, patience=3), sc.ShortcutAlarm(0.4, 3, monitor="mass_in_mask")),
    (
        dict(alarm_threshold=0.4, stop_training=True),
        sc.ShortcutAlarm(0.4, monitor="mass_in_mask", stop_training=True),
    ),
]


@pytest.mark.parametrize("kwargs,expected", ALARM_CASES, ids=["threshold", "rel", "pat", "stop"])
def test_the_former_alarm_keywords_map_onto_a_shortcut_alarm(tmp_path, kwargs, expected):
    cb, messages = _old(tmp_path, **kwargs)
    assert cb.alarm == expected
    assert len(messages) == len(kwargs)
    for key, message in zip(kwargs, messages, strict=True):
        assert message.startswith(f"SaliencyCallback: {key}={kwargs[key]!r} is deprecated")
        spelled = message.split("; pass ")[1]
        assert spelled.startswith("alarm=sc.ShortcutAlarm(")
        assert eval(spelled.removeprefix("alarm="), {"sc": sc}) == expected  # the advice works


def test_former_alarm_keywords_without_a_threshold_did_nothing_and_still_do(tmp_path):
    cb, messages = _old(tmp_path, patience=3, alarm_relative=True)
    assert cb.alarm is None and len(messages) == 2


def test_stop_training_with_an_alarm_object_sets_it_as_before(tmp_path):
    alarm = sc.ShortcutAlarm()
    cb, messages = _old(tmp_path, alarm=alarm, stop_training=True)
    assert cb.alarm is alarm and alarm.stop_training
    assert "alarm=sc.ShortcutAlarm(..., stop_training=...)" in messages[0]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(display=sc.Display(), sigma=2.0), r"both `display` and .*\['sigma'\]"),
        (dict(runtime=sc.Runtime(), strict=True), r"runtime=sc.Runtime\(strict=True\)"),
        (dict(alarm=sc.ShortcutAlarm(), alarm_threshold=0.5), "both `alarm` and"),
        (dict(alarm=sc.ShortcutAlarm(), patience=2), r"pass them to the alarm"),
    ],
    ids=["display", "runtime", "alarm", "patience"],
)
def test_a_former_keyword_with_its_new_object_is_an_error(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sc.SaliencyCallback(images(N, SHAPE), masks=masks(), log_dir=str(tmp_path), **kwargs)


@pytest.mark.parametrize(
    "build,error,match",
    [
        (lambda: sc.Display(sigma=-1), ValueError, "`sigma` >= 0"),
        (lambda: sc.Display(alpha="a"), TypeError, "`alpha`"),
        (lambda: sc.Display(colormap="nope"), ValueError, "colormap"),
        (lambda: sc.Display(min_tile=0), ValueError, "`min_tile`"),
        (lambda: sc.Display(value_range=(1.0, 0.0)), ValueError, "`value_range`"),
        (lambda: sc.Display(reduction="mean"), ValueError, "reduction.*'mean'"),
        (lambda: sc.Display(normalize="zscore"), ValueError, "normalize.*'zscore'"),
        (lambda: sc.Display(percentile=0), ValueError, "percentile=0"),
        (lambda: sc.Display(overview="no"), TypeError, "`overview` to be a bool.*'no'"),
        (lambda: sc.Display(overview_pixels=1.5), TypeError, "overview_pixels=1.5"),
        (lambda: sc.Display(2.0), TypeError, "positional"),
        (lambda: sc.Runtime(batch_size=0), ValueError, "`Runtime` expected `batch_size`.*=0"),
        (lambda: sc.Runtime(max_step_bytes=-1), ValueError, "max_step_bytes=-1"),
        (lambda: sc.Runtime(background_writer="yes"), TypeError, "background_writer='yes'"),
        (lambda: sc.Runtime(strict=1), TypeError, "`strict` to be a bool"),
        (lambda: sc.Runtime(run_name="a/b"), ValueError, "run_name='a/b'"),
        (lambda: sc.Runtime(run_name=""), ValueError, "run_name=''"),
    ],
)
def test_bad_option_objects_fail_when_built(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_options_are_frozen_and_reusable(tmp_path):
    display = sc.Display(sigma=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        display.sigma = 3.0  # type: ignore[misc]
    a = sc.SaliencyCallback(images(N, SHAPE), log_dir=str(tmp_path / "a"), display=display)
    b = sc.SaliencyCallback(images(N, SHAPE), log_dir=str(tmp_path / "b"), display=display)
    assert a.renderer == b.renderer and a.renderer.sigma == 2.0


def test_both_spellings_write_the_same_run(tmp_path):
    """One fit, two callbacks: the former keywords and the new objects write the same run."""
    keras.utils.set_random_seed(0)
    model = tiny_cnn(shape=SHAPE)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, labels = images(N, SHAPE), np.array([0, 1, 2, 0])
    common = dict(labels=labels, masks=masks(), log_dir=str(tmp_path), method="vanilla")
    with pytest.warns(DeprecationWarning):
        old = sc.SaliencyCallback(
            x,
            **common,
            sigma=2.0,
            overview=False,
            reduction="sum_abs",
            run_name="old",
            log_before_training=True,
            background_writer=False,
            strict=True,
            alarm_threshold=0.99,
            patience=2,
        )
    new = sc.SaliencyCallback(
        x,
        **common,
        display=sc.Display(sigma=2.0, overview=False, reduction="sum_abs"),
        runtime=sc.Runtime(
            run_name="new", log_before_training=True, background_writer=False, strict=True
        ),
        alarm=sc.ShortcutAlarm(0.99, 2, monitor="mass_in_mask"),
    )
    rng = np.random.default_rng(1)
    xs, ys = rng.random((8, *SHAPE)).astype(np.float32), rng.integers(0, 3, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the alarms fire
        model.fit(xs, ys, epochs=3, batch_size=8, verbose=0, callbacks=[old, new])
    a, b = read_run(str(tmp_path / "old")), read_run(str(tmp_path / "new"))
    assert a.tags == b.tags and "saliency/overview" not in a.tags
    np.testing.assert_equal(a.scalars, b.scalars)  # NaN equals NaN (e.g. harm without pairs)
    assert a.texts == b.texts
    # mass in mask < 0.99 always: patience 2 fires at the second logged epoch (not counting the
    # pre-training step), then stays quiet until the signal has been back above
    assert a.scalars["saliency/alarm"] == [(0, 0.0), (1, 1.0), (2, 0.0)]
    assert a.images["saliency/probes"][0][0] == -1  # log_before_training
    for tag, events in a.images.items():
        for (step_a, pngs_a), (step_b, pngs_b) in zip(events, b.images[tag], strict=True):
            assert step_a == step_b
            for pa, pb in zip(pngs_a, pngs_b, strict=True):
                np.testing.assert_array_equal(pa, pb)
    assert [e.step for e in old.alarm_events] == [e.step for e in new.alarm_events] == [1]
