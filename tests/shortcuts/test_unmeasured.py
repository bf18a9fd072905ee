"""Cannot tell is not all clear: a signal that cannot be measured is never written as NaN,
the callback says why once per fit, and the verdict (the Saliency tab, the report) says
"cannot tell" where the alarm could not judge.

The fits use the hand-built background reader of `hand_models` on probes whose harm can or
cannot be estimated by construction (one probe per class: no probe has a partner of its own
class, so the harm rests on none), and read the event files back with TensorBoard's reader.
"""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np
import pytest
from hand_models import background_reader, probe_set, vanilla_callback
from tb_events import read_run

import saliency_callback as sc
from saliency_callback.output import report
from saliency_callback.shortcuts import unmeasured
from saliency_callback.tensorboard_plugin import events, summary

HARM = "saliency/background/harm"
PROBES = "saliency/background/harm_probes"
LIMIT = "saliency/alarm_limit/background/harm_low"


class LogsSeen(keras.callbacks.Callback):
    """Keeps a copy of the `logs` each epoch end hands to the callbacks after ours."""

    def __init__(self):
        super().__init__()
        self.seen: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(dict(logs or {}))


def same_class_partners(labels: np.ndarray) -> int:
    """The probes the harm can rest on (independent of the library): those with another probe
    of their own class (a `mixed_same` partner; every probe here has an object, a background
    and a probe of another class)."""
    return int(sum((labels == c).sum() >= 2 for c in labels))


def fit_twice(tmp_path, n: int):
    """The first `n` probes (class `i % 3`), the default alarm, two fits of 2 epochs with one
    callback; returns the callback, the logs seen after it, the warnings of each fit, the run."""
    images, labels, masks = probe_set(object_reads_class=False)
    images, labels, masks = images[:n], labels[:n], masks[:n]
    cb = vanilla_callback(tmp_path, images, labels, masks, alarm=sc.ShortcutAlarm())
    seen, caught = LogsSeen(), []
    model = background_reader()
    for initial in (0, 2):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            model.fit(
                images,
                labels,
                epochs=initial + 2,
                initial_epoch=initial,
                verbose=0,
                callbacks=[cb, seen],
            )
        caught.append([str(w.message) for w in record if "not logged at step" in str(w.message)])
    return cb, labels, seen.seen, caught, str(tmp_path / "saliency")


def test_a_harm_on_one_probe_per_class_is_not_written_and_the_verdict_cannot_tell(tmp_path):
    cb, labels, seen, caught, path = fit_twice(tmp_path, 3)  # classes 0, 1, 2: one probe each
    assert same_class_partners(labels) == 0
    run = read_run(path)
    bad = [(t, s, v) for t, vs in run.scalars.items() for s, v in vs if not math.isfinite(v)]
    assert bad == []
    assert run.scalars[PROBES] == [(s, 0.0) for s in range(4)]  # every step, the true count
    assert not {HARM, HARM + "_low", HARM + "_high"} & set(run.scalars)
    assert run.scalars["saliency/background/flip_rate"] == [(s, 1.0) for s in range(4)]
    # The alarm never judged a step: no `saliency/alarm` (neither 0 nor NaN), its threshold kept.
    assert "saliency/alarm" not in run.scalars and cb.alarm_events == []
    assert run.scalars[LIMIT] == [(s, pytest.approx(0.05)) for s in range(4)]
    assert "saliency/alarm_message" not in run.texts
    # Keras's logs: the callbacks after ours see no NaN, and no harm.
    assert len(seen) == 4
    assert all(math.isfinite(v) for logs in seen for v in logs.values())
    assert all(logs["saliency_background_flip_rate"] == 1.0 for logs in seen)
    assert not [k for logs in seen for k in logs if "harm" in k]
    # Said once per fit, naming the signals and why.
    assert [len(c) for c in caught] == [1, 1]
    message = caught[0][0]
    assert "background/harm, background/harm_low and background/harm_high" in message
    assert "not logged at step 0: the harm estimate rests on 0 of 3 probes (it needs 2)" in message
    assert "at least two per class" in message
    # The Saliency tab: cannot tell, never "no alarm".
    verdict = summary.run_summary("r", events.RunReader(path).refresh())["verdict"]
    assert verdict["state"] == "cannot_tell" and verdict["checked"] == 0
    assert verdict["unchecked"] == [0, 1, 2, 3]
    assert verdict["harm"] == {
        "step": 3,
        "value": None,
        "low": None,
        "high": None,
        "probes": 0,
        "total": 3,
        "cannot_tell": True,
        "sentence": unmeasured.cannot_tell_sentence(0, 3),
    }
    assert verdict["reason"].startswith("Cannot tell: the harm estimate rests on 0 of 3 probes")
    assert "at least two per class" in verdict["reason"]
    # The report says the same.
    (saliency_run,) = report.read_saliency_runs(str(tmp_path))
    assert saliency_run.has_alarm and saliency_run.alarms == []
    page = report.render_html([saliency_run], max_steps=1, cell_width=40)
    assert "Cannot tell: the harm estimate rests on 0 of 3 probes" in page
    assert "never fired" not in page


def test_a_harm_on_two_probes_per_class_is_written_with_its_bounds(tmp_path):
    cb, labels, seen, caught, path = fit_twice(tmp_path, 6)  # classes 0, 1, 2: two each
    assert same_class_partners(labels) == 6 and cb.alarm_events == []  # (the second fit's)
    run = read_run(path)
    assert run.scalars[PROBES] == [(s, 6.0) for s in range(4)]
    low = dict(run.scalars[HARM + "_low"])
    assert sorted(low) == [0, 1, 2, 3] and all(v > 0.05 for v in low.values())
    assert caught == [[], []]
    assert all(math.isfinite(logs["saliency_background_harm_low"]) for logs in seen)
    # The background reader loses its accuracy on every swap: the alarm judges every step and
    # fires at once (it re-arms only once the harm is gone; the second fit continues the
    # first, its state replayed from the event files).
    assert run.scalars["saliency/alarm"] == [(0, 1.0), (1, 0.0), (2, 0.0), (3, 0.0)]
    verdict = summary.run_summary("r", events.RunReader(path).refresh())["verdict"]
    assert verdict["state"] == "alarm" and verdict["unchecked"] == []
    harm = verdict["harm"]
    assert harm["probes"] == 6 and harm["total"] == 6 and harm["cannot_tell"] is False
    assert harm["sentence"] is None
    assert harm["value"] == pytest.approx(dict(run.scalars[HARM])[3])
    assert harm["low"] == pytest.approx(low[3])
    assert harm["low"] <= harm["value"] <= harm["high"]


def test_the_verdict_of_runs_whose_alarm_could_not_judge():
    """`judge` on hand-written runs: one probe under the harm, a clear run that could not
    judge an earlier step, and a run of the former format (NaN alarm with a "could not run"
    message), which the tab used to call an alarm."""
    one = {
        "saliency/background/harm": {0: 0.4},
        "saliency/background/harm_probes": {0: 1.0},
        "saliency/alarm_limit/background/harm_low": {0: 0.05},
    }
    verdict = unmeasured.judge(one, {}, 6)
    assert verdict["state"] == "cannot_tell" and verdict["unchecked"] == [0]
    assert verdict["harm"]["value"] == 0.4 and verdict["harm"]["cannot_tell"]
    assert "rests on 1 of 6 probes (it needs 2)" in verdict["reason"]
    recovered = {
        "saliency/mass_in_mask": {1: 0.2, 2: 0.3},
        "saliency/alarm": {1: 0.0, 2: 0.0},
        "saliency/alarm_limit/mass_in_mask": {0: 0.1, 1: 0.1, 2: 0.1},
    }
    verdict = unmeasured.judge(recovered, {}, 4)
    assert verdict["state"] == "clear" and verdict["unchecked"] == [0]
    assert verdict["checked"] == 2 and verdict["harm"] is None
    former = {"saliency/confidence": {0: 0.5, 1: 0.5}, "saliency/alarm": {0: math.nan, 1: math.nan}}
    notes = {0: "Shortcut alarm could not run: ...", 1: "Shortcut alarm could not run: ..."}
    verdict = unmeasured.judge(former, notes, 4)
    assert verdict["state"] == "cannot_tell" and verdict["alarm_steps"] == []
    assert verdict["reason"] == notes[1]
    cut_short = unmeasured.judge({}, {3: "Predictions follow the background"}, 4)
    assert cut_short["state"] == "alarm" and cut_short["first"] == 3  # its scalars never came


def test_each_signal_is_explained_once_per_fit():
    said = unmeasured.Unmeasured()
    scalars = {"saliency/a": 1.0, "saliency/background/reliance": math.nan, PROBES: 4.0}
    kept, why = said.keep(0, scalars, 4, labels=True)
    assert kept == {"saliency/a": 1.0, PROBES: 4.0}
    assert why.startswith("background/reliance not logged at step 0: no probe has a background")
    assert said.keep(1, scalars, 4, labels=True)[1] is None
    more = dict(scalars, **{"saliency/mass_in_mask/probe_02": math.inf})
    assert said.keep(2, more, 4, labels=True)[1].startswith("mass_in_mask/probe_02 not logged")
    said.reset()
    assert said.keep(3, scalars, 4, labels=True)[1] is not None
