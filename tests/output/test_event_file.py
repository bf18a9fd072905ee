"""The event files written without TensorFlow (`output/event_file.py`, `RunWriter`) against
TensorFlow's own summary ops on the same inputs, both read back with TensorBoard's reader; the
PNG encoders against the pixels; resume's reader on them, cut files included."""

from __future__ import annotations

import os

import numpy as np
import pytest
from tb_events import decode_png, event_files, read_run

from saliency_callback.output.event_file import EventFile, pillow_png, read_events
from saliency_callback.output.writer import RunWriter
from saliency_callback.training.resume import read_history

RNG = np.random.default_rng(0)
IMAGES = {  # tag -> (step, images (k, H, W, 3), description)
    "saliency/probes": [(0, RNG.integers(0, 256, (3, 9, 14, 3), dtype=np.uint8), "the probes")],
    "saliency/timeline": [
        (0, RNG.integers(0, 256, (1, 5, 7, 3), dtype=np.uint8), None),
        (2, RNG.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8), None),
    ],
}
SCALARS = [(0, {"saliency/a": 0.25, "saliency/b": -3.5}), (2, {"saliency/a": 1e-7})]
TEXTS = [(1, "saliency/alarm_message", "**no alarm** yet")]


def _ours(log_dir: str) -> None:
    writer = RunWriter(log_dir, "saliency")
    for tag, items in IMAGES.items():
        for step, data, description in items:
            writer.images(tag, data, step, description)
    for step, values in SCALARS:
        writer.scalars({**values, "saliency/nan": float("nan")}, step)  # NaN: left out
    for step, tag, value in TEXTS:
        writer.text(tag, value, step)
    writer.close()


def _tensorflow(log_dir: str) -> None:
    tf = pytest.importorskip("tensorflow")
    with tf.summary.create_file_writer(os.path.join(log_dir, "saliency")).as_default() as w:
        for tag, items in IMAGES.items():
            for step, data, description in items:
                tf.summary.image(
                    tag, data, step=step, max_outputs=len(data), description=description
                )
        for step, values in SCALARS:
            for tag, value in values.items():
                tf.summary.scalar(tag, value, step=step)
        for step, tag, value in TEXTS:
            tf.summary.text(tag, value, step=step)
        w.flush()


def test_the_events_read_back_as_tensorflows_own(tmp_path):
    _tensorflow(str(tmp_path / "tf"))
    _ours(str(tmp_path / "ours"))
    theirs, ours = (read_run(str(tmp_path / d / "saliency")) for d in ("tf", "ours"))
    assert ours.tags == theirs.tags == {*IMAGES, "saliency/a", "saliency/b", *[t[1] for t in TEXTS]}
    assert ours.scalars == theirs.scalars
    assert ours.scalars["saliency/b"] == [(0, -3.5)]
    assert ours.texts == theirs.texts == {"saliency/alarm_message": [(1, "**no alarm** yet")]}
    assert ours.descriptions == theirs.descriptions
    assert ours.descriptions["saliency/probes"] == "the probes"
    for tag, items in IMAGES.items():
        assert [s for s, _ in ours.images[tag]] == [s for s, _ in theirs.images[tag]]
        for (_, mine), (_, tfs), (_, data, _) in zip(
            ours.images[tag], theirs.images[tag], items, strict=True
        ):
            np.testing.assert_array_equal(np.stack(mine), data)
            np.testing.assert_array_equal(np.stack(tfs), data)


@pytest.mark.parametrize("level", [0, 1, 9])
def test_pillow_pngs_decode_to_the_pixels(level):
    data = RNG.integers(0, 256, (2, 6, 11, 3), dtype=np.uint8)
    pngs = pillow_png(data, level)
    np.testing.assert_array_equal(np.stack([decode_png(p) for p in pngs]), data)


def test_resume_reads_the_same_history_from_both_writers(tmp_path):
    _tensorflow(str(tmp_path / "tf"))
    _ours(str(tmp_path / "ours"))
    theirs, ours = (read_history(str(tmp_path / d / "saliency")) for d in ("tf", "ours"))
    assert ours.steps == theirs.steps == {0, 1, 2}
    assert ours.scalars == theirs.scalars
    assert ours.scalars["saliency/a"] == {0: 0.25, 2: float(np.float32(1e-7))}
    assert ours.complete == {0, 2}


def test_a_restart_purges_and_a_cut_record_ends_the_file(tmp_path):
    _ours(str(tmp_path))
    run = str(tmp_path / "saliency")
    writer = RunWriter(str(tmp_path), "saliency")
    writer.restart(2, twice=True)
    writer.scalars({"saliency/a": 5.0}, 2)
    writer.close()
    history = read_history(run)
    assert history.started
    assert history.scalars["saliency/a"] == {0: 0.25, 2: 5.0}
    assert read_run(run, served=True).scalars["saliency/a"] == [(0, 0.25), (2, 5.0)]
    # A writer killed mid-record: the file ends at the last whole record, as TensorBoard reads it.
    last = event_files(run)[-1]
    whole = list(read_events(last))
    with open(last, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x00\x00\x00\x00\x01\x02")
    assert [e.SerializeToString() for e in read_events(last)] == [
        e.SerializeToString() for e in whole
    ]
    assert read_history(run).scalars == history.scalars


def test_a_new_file_starts_with_the_version_event_and_files_get_distinct_names(tmp_path):
    first, second = EventFile(str(tmp_path / "r")), EventFile(str(tmp_path / "r"))
    first.close()
    second.close()
    assert first.path != second.path
    assert [e.file_version for e in read_events(first.path)] == ["brain.Event:2"]
