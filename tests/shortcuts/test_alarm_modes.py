"""The alarm's `relative_to` modes in real fits, on hand-built models whose answer is known:
each mode fires on a model that reads the background and stays silent on one that reads the
object, through `fit` and through a `keras.callbacks.BackupAndRestore` resume (the streak, the
chance level and the first value are then replayed from the event files)."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from hand_models import (
    K,
    PreemptAt,
    PreemptedError,
    S,
    next_second,
    probe_set,
    vanilla_callback,
)
from tb_events import read_run

import saliency_callback as sc

EPOCHS = 3
LEAN = sc.Display(overview=False, timeline=False)  # the alarm needs no images


def two_readers() -> keras.Model:
    """Softmax(background path + object path), each path one Dense layer that `read` switches
    on (10 * identity) or off (zeros): the background path reads the image's mean colour, the
    object path its most colourful pixel (zero on any grey), as in `hand_models`."""
    inp = keras.Input((S, S, 3))
    chroma = keras.layers.Conv2D(3, 1, activation="relu", name="chroma")
    mean = keras.layers.GlobalAveragePooling2D()(inp)
    peak = keras.layers.GlobalMaxPooling2D()(chroma(inp))
    paths = [keras.layers.Dense(K, name=n)(x) for n, x in (("background", mean), ("object", peak))]
    model = keras.Model(inp, keras.layers.Softmax()(keras.layers.Add()(paths)))
    chroma.set_weights([(np.eye(3) - 1 / 3).reshape(1, 1, 3, 3).astype(np.float32), np.zeros(3)])
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")  # frozen
    return model


def read(model: keras.Model, path: str) -> None:
    for name in ("background", "object"):
        scale = 10.0 if name == path else 0.0
        model.get_layer(name).set_weights([np.eye(K, dtype=np.float32) * scale, np.zeros(K)])


class Reads(keras.callbacks.Callback):
    """Sets the path the model reads at the start of each epoch: `schedule[epoch]` (the last
    entry for later epochs). The weights depend on the epoch only, so a resumed fit sees the
    same model as an uninterrupted one."""

    def __init__(self, *schedule: str):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        read(self.model, self.schedule[min(epoch, len(self.schedule) - 1)])


# mode -> (alarm, probes' class in the object?, what the shortcut model reads, steps it fires);
# the clean model reads the object of probes whose class is in the object.
# - chance: the background reader's gradient is the same at every pixel (mean colour), so its
#   mass in mask is the mask's area (chance), below 1.5x chance; the object reader's is 1.
# - above_chance: the background alone gives the background reader's class (accuracy 1 > 2/3,
#   halfway from chance 1/3 to 1); without its object the object reader is at chance.
# - first: the model reads the object at first (mass 1), then the background from epoch 2:
#   its mass drops below half its first value; a resume must remember the first value.
MODES = {
    "chance": (
        lambda: sc.ShortcutAlarm(1.5, 2, monitor="mass_in_mask", relative_to="chance"),
        False,
        ("background",),
        [1],
    ),
    "above_chance": (
        lambda: sc.ShortcutAlarm(
            0.5, 2, monitor="background/only_bg_accuracy", relative_to="above_chance"
        ),
        False,
        ("background",),
        [1],
    ),
    "first": (
        lambda: sc.ShortcutAlarm(0.5, monitor="mass_in_mask", relative_to="first"),
        True,
        ("object", "object", "background"),
        [2],
    ),
}


def fit(tmp_path, mode, shortcut, preempt_at=None):
    """Fits EPOCHS epochs (preempted after `preempt_at` with its backup saved, then resumed by a
    new callback and alarm, as in a new process); returns the alarm's steps of the last `fit`
    and the run as TensorBoard serves it."""
    make_alarm, object_reads_class, schedule, _ = MODES[mode]
    if not shortcut:  # the class is in the object, and the model reads it
        object_reads_class, schedule = True, ("object",)
    images, labels, masks = probe_set(object_reads_class=object_reads_class)
    model = two_readers()
    log_dir, backup = tmp_path / "logs", str(tmp_path / "backup")

    def callbacks(stop):
        cb = vanilla_callback(log_dir, images, labels, masks, alarm=make_alarm(), display=LEAN)
        parts = [Reads(*schedule), cb, keras.callbacks.BackupAndRestore(backup)]
        return cb, [*parts, PreemptAt(stop)] if stop is not None else parts

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if preempt_at is not None:
            _, parts = callbacks(preempt_at)
            with pytest.raises(PreemptedError):
                model.fit(images, labels, epochs=EPOCHS, verbose=0, callbacks=parts)
            next_second()  # the resumed event file sorts after this one
        cb, parts = callbacks(None)
        history = model.fit(images, labels, epochs=EPOCHS, verbose=0, callbacks=parts)
    alarms = [str(w.message) for w in caught if "alarm" in str(w.message).lower()]
    assert alarms == []  # e.g. "no chance level": the alarm could not do its work
    if preempt_at is not None:  # the resumed fit trained only the epochs after the backup
        assert len(history.history["loss"]) == EPOCHS - preempt_at - 1
    return [e.step for e in cb.alarm_events], read_run(str(log_dir / "saliency"), served=True)


def fired(run) -> list[int]:
    """The steps at which the event files say the alarm fired (its scalar and its message)."""
    steps = [s for s, v in run.scalars["saliency/alarm"] if v == 1.0]
    assert steps == [s for s, _ in run.texts.get("saliency/alarm_message", [])]
    assert [s for s, _ in run.scalars["saliency/alarm"]] == list(range(EPOCHS))  # each once
    return steps


@pytest.mark.tf_only  # one mode runs on every backend (a resume, below); all cost ~15 fits
@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_mode_fires_on_a_background_reader_through_fit(tmp_path, mode):
    expected = MODES[mode][3]
    events, run = fit(tmp_path, mode, shortcut=True)
    assert events == expected and fired(run) == expected


@pytest.mark.tf_only
@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_mode_stays_silent_on_an_object_reader_through_a_resume(tmp_path, mode):
    events, run = fit(tmp_path, mode, shortcut=False, preempt_at=0)
    assert events == [] and fired(run) == []


@pytest.mark.parametrize(
    "mode", [pytest.param(m, marks=[] if m == "first" else pytest.mark.tf_only) for m in MODES]
)
def test_each_mode_fires_at_the_same_step_after_a_resume(tmp_path, mode):
    """Preempted after epoch 1 with its backup: the resumed alarm must take the streak
    (patience 2), the chance level or the first value from the steps logged before."""
    expected = MODES[mode][3]
    events, run = fit(tmp_path, mode, shortcut=True, preempt_at=expected[0] - 1)
    assert events == expected and fired(run) == expected


def test_a_missing_chance_level_warns_instead_of_never_firing():
    alarm = sc.ShortcutAlarm(1.0, monitor="mass_in_mask", relative_to="chance")
    with pytest.warns(UserWarning, match="no chance level at step 3") as caught:
        assert alarm.update(3, 0.01, chance=None) is None
        assert alarm.update(4, 0.01, chance=float("nan")) is None
    assert len(caught) == 1  # once until `reset`
    assert alarm.update(5, 0.01, chance=0.2) is not None  # and it fires once it has one
    alarm.reset()
    with pytest.warns(UserWarning, match="no chance level"):
        alarm.update(0, 0.01)


@pytest.mark.tf_only  # backend-free logic
def test_an_alarm_on_a_signal_the_model_does_not_produce_warns(tmp_path):
    """A regression model has no predicted class: an alarm on the flip rate cannot fire."""
    images, _, masks = probe_set(object_reads_class=False)
    inp = keras.Input((S, S, 3))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inp)))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    alarm = sc.ShortcutAlarm(0.5, monitor="background/flip_rate")
    cb = vanilla_callback(tmp_path, images, masks=masks, alarm=alarm)
    with pytest.warns(UserWarning, match="'background/flip_rate', which is not measured") as w:
        model.fit(images, np.zeros(len(images)), epochs=2, verbose=0, callbacks=[cb])
    assert sum("not measured" in str(x.message) for x in w) == 1  # once per fit


class Recording(sc.ShortcutAlarm):
    """Records the chance level of every update (the live ones and those replayed)."""

    def update(self, step, value, per_probe=None, chance=None):
        self.chances.append((step, chance))
        return super().update(step, value, per_probe, chance)


@pytest.mark.tf_only  # backend-free logic
def test_a_resume_replays_the_chance_level_the_live_alarm_used(tmp_path):
    """Probe 8 is black: the object reader's map of it is 0 (no mass: NaN), so the live chance
    level is the area of the other probes' masks (16/144), not the mean over all masks with
    probe 8's large one (the logged `mass_in_mask_chance`); the replay must use the same."""
    images, labels, masks = probe_set(object_reads_class=True)
    images[8] = 0.0
    masks[8] = False
    masks[8, 1:11, 1:11] = True
    model = two_readers()
    log_dir, backup = str(tmp_path / "logs"), str(tmp_path / "backup")
    alarms = []

    def callbacks(stop):
        alarms.append(Recording(0.5, monitor="mass_in_mask", relative_to="chance"))
        alarms[-1].chances = []
        cb = vanilla_callback(log_dir, images, labels, masks, alarm=alarms[-1], display=LEAN)
        return [Reads("object"), cb, keras.callbacks.BackupAndRestore(backup), PreemptAt(stop)]

    with pytest.raises(PreemptedError):
        model.fit(images, labels, epochs=3, verbose=0, callbacks=callbacks(1))
    next_second()  # the resumed event file sorts after this one
    model.fit(images, labels, epochs=3, verbose=0, callbacks=callbacks(-1))
    live, resumed = alarms[0].chances, alarms[1].chances
    assert live == [(0, pytest.approx(16 / 144)), (1, pytest.approx(16 / 144))]
    assert resumed[:2] == live  # replayed, then step 2 live
    assert [s for s, _ in resumed] == [0, 1, 2]
