"""Preemption with `keras.callbacks.BackupAndRestore`: no duplicates, no gaps, alarm continues."""

from __future__ import annotations

import itertools
import struct
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import images, tiny_cnn
from hand_models import PreemptAt, PreemptedError, next_second
from tb_events import event_files, read_run

import saliency_callback as sc

SHAPE = (12, 12, 3)
EPOCHS = 6


def masks(n):
    m = np.zeros((n, *SHAPE[:2]), bool)
    m[:, 3:9, 2:7] = True
    return m


LABELS = [0, 1, 2, 0]


def callback(log_dir, freq=1, background_writer=True):
    # The background alarm with a threshold every value is above: with patience 3 it fires at
    # the third logged epoch after training starts, whether or not training was interrupted.
    return sc.SaliencyCallback(
        images(4, SHAPE),
        labels=LABELS,
        masks=masks(4),
        log_dir=str(log_dir),
        freq=freq,
        alarm=sc.ShortcutAlarm(-1.5, 3, monitor="background/reliance"),
        runtime=sc.Runtime(
            log_before_training=True, strict=True, background_writer=background_writer
        ),
    )


def cut_short(log_dir, freq):
    """A callback whose process dies at step 2 after the images, before the scalars."""
    cb = callback(log_dir, freq, background_writer=False)
    original = cb.writer.scalars

    def scalars(values, step):
        if step == 2:
            raise PreemptedError
        original(values, step)

    cb.writer.scalars = scalars
    return cb


def new_model():
    keras.utils.set_random_seed(0)
    model = tiny_cnn(shape=SHAPE)
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    return model


def fit(model, callbacks):
    rng = np.random.default_rng(1)
    x, y = rng.random((16, *SHAPE)).astype(np.float32), rng.integers(0, 3, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the alarm's warning
        # shuffle=False: the epochs trained after a resume see the batches of an uninterrupted
        # run (Keras does not restore the shuffling's random state)
        return model.fit(
            x, y, epochs=EPOCHS, batch_size=4, shuffle=False, verbose=0, callbacks=callbacks
        )


def run(tmp_path, order, preempt_at, freq=1, between=None):
    """Trains EPOCHS epochs, preempted once at the end of `preempt_at`, then resumed by a new
    callback (as in a new process) with the same log directory and backup; `between(log_dir)`
    runs between the two fits."""
    backup = str(tmp_path / "backup")
    log_dir = tmp_path / "logs"

    def callbacks(interrupt):
        parts = {
            "backup": keras.callbacks.BackupAndRestore(backup),
            "saliency": callback(log_dir, freq),
            "preempt": PreemptAt(preempt_at if interrupt else -1),
        }
        if interrupt and "preempt" not in order:
            parts["saliency"] = cut_short(log_dir, freq)
        return [parts[name] for name in order]

    model = new_model()
    interrupted = callbacks(True)
    with pytest.raises(PreemptedError):
        fit(model, interrupted)
    # The dead process's worker writes nothing after this (here: it finishes its step first).
    next(c for c in interrupted if isinstance(c, sc.SaliencyCallback)).flush()
    if between is not None:
        between(log_dir)
    next_second()  # the resumed event file sorts after this one, as after a real restart
    history = fit(model, callbacks(False))
    return read_run(str(log_dir / "saliency"), served=True), history


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same training without preemption, for each `freq`, as TensorBoard serves it."""
    runs = {}
    for freq in (1, 3):
        log_dir = tmp_path_factory.mktemp(f"uninterrupted-{freq}")
        fit(new_model(), [callback(log_dir, freq)])
        runs[freq] = read_run(str(log_dir / "saliency"), served=True)
    return runs


REL, ABS = 1e-4, 1e-5
"""The tolerance of a resumed value against the uninterrupted run's (float noise only)."""

CHANGING = ("saliency/confidence", "saliency/mass_in_mask")
"""Scalars that move between neighbouring logged epochs by more than the tolerance (checked in
each reference run): a step written from a neighbouring epoch's weights would show there."""

PIXELS = 2
"""The most a decoded pixel of a resumed image may differ from the uninterrupted run's (float
noise that flips the rounding to uint8); neighbouring epochs' images differ by more. The
timeline too: the resumed fit rebuilds its earlier columns from the logged panels."""


def assert_same_values(resumed, reference):
    """Every scalar at every step, within float tolerance (the resumed epochs are trained from
    the restored weights, with the same batches), and every image's decoded pixels; the
    tolerances are checked to be tighter than the change between neighbouring epochs."""
    assert set(resumed.scalars) == set(reference.scalars)
    for tag in CHANGING:
        values = [v for _, v in reference.scalars[tag]]
        for a, b in itertools.pairwise(values):
            assert b != pytest.approx(a, rel=REL, abs=ABS), (tag, values)
    for tag, expected in reference.scalars.items():
        got = resumed.scalars[tag]
        assert [s for s, _ in got] == [s for s, _ in expected], tag
        for (step, a), (_, b) in zip(got, expected, strict=True):
            assert a == pytest.approx(b, rel=REL, abs=ABS, nan_ok=True), (tag, step)
    assert resumed.texts == reference.texts
    assert set(resumed.images) == set(reference.images)
    for tag, expected in reference.images.items():
        got = dict(resumed.images[tag])
        if tag == "saliency/probe_boxes":  # written with the first step of each fit
            assert set(got) >= {s for s, _ in expected}, tag
        else:
            assert list(got) == [s for s, _ in expected], tag
        for step, theirs in expected:
            ours = got[step]
            assert len(ours) == len(theirs), (tag, step)
            for a, b in zip(ours, theirs, strict=True):
                assert a.shape == b.shape, (tag, step)
                assert np.abs(a.astype(int) - b).max() <= PIXELS, (tag, step)
    for tag in ("saliency/probes", "saliency/overview"):  # the pixel tolerance can tell epochs
        panels = [images[0].astype(int) for _, images in reference.images[tag]]
        for a, b in itertools.pairwise(panels):
            assert a.shape != b.shape or np.abs(a - b).max() > PIXELS, tag


@pytest.mark.parametrize(
    "order",
    [
        # The backup of epoch 2 is saved, then the run dies before the saliency of epoch 2 is
        # written (or while the worker writes it): a gap at step 2, unless it is filled.
        ("backup", "preempt", "saliency"),
        # The saliency of epoch 2 is written, then the run dies before the backup of epoch 2:
        # epoch 2 is trained again, and step 2 would be written twice.
        ("saliency", "preempt", "backup"),
        # The backup of epoch 2 is saved, then the run dies while step 2 is being written:
        # its images are in the event file, its scalars are not.
        ("backup", "saliency"),
    ],
    ids=["gap", "duplicate", "cut-short"],
)
def test_resume_has_each_step_once_and_the_alarm_keeps_its_streak(tmp_path, order, uninterrupted):
    run_, history = run(tmp_path, order, preempt_at=2)
    expected = list(range(-1, EPOCHS))
    for tag in ("saliency/overview", "saliency/probes", "saliency/timeline"):
        assert [s for s, _ in run_.images[tag]] == expected, tag
    # Patience 3 over the logged epochs 0, 1, 2 (step -1 does not count): one message, at 2.
    assert [s for s, _ in run_.texts["saliency/alarm_message"]] == [2]
    assert [s for s, v in run_.scalars["saliency/alarm"] if v == 1.0] == [2]
    resumed_at = 3 if order[0] == "backup" else 2  # the backup of epoch 2 was saved, or not
    assert len(history.history["loss"]) == EPOCHS - resumed_at
    # By value: a step filled in (gap, cut-short) or written again (duplicate) from other
    # weights than the uninterrupted run's at that epoch would differ.
    assert_same_values(run_, uninterrupted[1])


@pytest.mark.parametrize("preempt_at", [3, 4])
def test_resume_with_freq_fills_in_only_a_due_step(tmp_path, preempt_at, uninterrupted):
    """freq=3 logs epochs 0, 3 and the last (5). Preempted after the backup of epoch 3 and
    before its saliency, step 3 is filled in at the resume; after epoch 4, nothing is (step 4
    is not due). The alarm fires at the third logged epoch, 5, across the interruption."""
    run_, _ = run(tmp_path, ("backup", "preempt", "saliency"), preempt_at, freq=3)
    for tag in ("saliency/probes", "saliency/confidence"):
        steps = [s for s, _ in (run_.images.get(tag) or run_.scalars[tag])]
        assert steps == [-1, 0, 3, 5], tag
    assert [s for s, _ in run_.texts["saliency/alarm_message"]] == [5]
    assert_same_values(run_, uninterrupted[3])


def truncate_last_record(log_dir):
    """Cuts the newest event file in the middle of its last record, as a process killed while
    writing leaves it (records: length u64, crc u32, data, crc u32)."""
    (path,) = event_files(str(log_dir / "saliency"))
    data = Path(path).read_bytes()
    offset, starts = 0, []
    while offset < len(data):
        starts.append(offset)
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        offset += 8 + 4 + length + 4
    assert offset == len(data)
    last = starts[-1]
    with open(path, "r+b") as f:
        f.truncate(last + (len(data) - last) // 2)


def test_resume_after_a_truncated_event_file(tmp_path, uninterrupted):
    """The interrupted run's last record (step 2's scalars) is half written: step 2 is
    incomplete, so it is discarded and written again from the restored weights."""
    run_, _ = run(
        tmp_path,
        ("saliency", "backup", "preempt"),
        preempt_at=2,
        between=truncate_last_record,
    )
    for tag in ("saliency/probes", "saliency/confidence"):
        steps = [s for s, _ in (run_.images.get(tag) or run_.scalars[tag])]
        assert steps == list(range(-1, EPOCHS)), tag
    assert_same_values(run_, uninterrupted[1])


def test_event_files_are_read_in_the_order_tensorboard_reads_them(tmp_path, monkeypatch):
    """TensorFlow names an event file `...<seconds>.<host>.<pid>.<counter>.v2`: a restart in
    the same process and second can give `.10.v2` after `.9.v2`, which sorts before it by
    name. TensorBoard reads a run's files in name order (its `DirectoryLoader`, as the
    server's accumulator uses it), and so must the resume's reader and the Saliency tab's,
    or they would show another history than TensorBoard's own scalars."""
    from tensorboard.backend.event_processing import directory_loader, io_wrapper

    from saliency_callback.tensorboard_plugin.events import RunReader
    from saliency_callback.training.resume import read_history

    names = [f"events.out.tfevents.1700000000.host.42.{i}.v2" for i in (8, 9, 10, 11)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    opened: list[str] = []

    class Recorded:
        def __init__(self, path):
            opened.append(path)

        def Load(self):  # noqa: N802 (TensorBoard's name)
            return iter(())

    loader = directory_loader.DirectoryLoader(
        str(tmp_path), Recorded, path_filter=io_wrapper.IsTensorFlowEventsFile
    )
    assert list(loader.Load()) == []
    tensorboard_order = [Path(p).name for p in opened]
    assert tensorboard_order == [names[i] for i in (2, 3, 0, 1)]  # by name: .10 before .8
    opened.clear()
    from saliency_callback.training import resume

    monkeypatch.setattr(resume, "read_events", lambda path: Recorded(path).Load())
    read_history(str(tmp_path))
    assert [Path(p).name for p in opened] == tensorboard_order
    assert [Path(p).name for p in RunReader(str(tmp_path)).files()] == tensorboard_order


def test_a_timeline_that_cannot_be_read_back_starts_anew(tmp_path, monkeypatch, uninterrupted):
    """A logged panel that cannot be decoded costs the timeline its earlier columns (a
    warning), never the fit."""
    from saliency_callback.training import worker

    def unreadable(pngs):
        raise ValueError("not a PNG")

    monkeypatch.setattr(worker, "decode_pngs", unreadable)
    run_, history = run(tmp_path, ("backup", "preempt", "saliency"), preempt_at=2)
    assert len(history.history["loss"]) == EPOCHS - 3  # the resumed fit ran to the end
    last = EPOCHS - 1
    ours = dict(run_.images["saliency/timeline"])[last][0]
    theirs = dict(uninterrupted[1].images["saliency/timeline"])[last][0]
    assert ours.shape[0] == theirs.shape[0] and ours.shape[1] < theirs.shape[1], (
        ours.shape,
        theirs.shape,
    )
