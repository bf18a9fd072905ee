"""RunWriter against TensorFlow's own `tf.summary.image`/`scalar`, read back by TensorBoard."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tb_events import decode_png, event_files, read_run, tensor_value
from tensorboard.backend.event_processing import event_accumulator

from saliency_callback.output.writer import RunWriter, check_log_dir


def tensors(run_dir, tag):
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    return acc.SummaryMetadata(tag), [tensor_value(e) for e in acc.Tensors(tag)]


def test_images_are_written_like_tf_summary_image(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (3, 7, 11, 3), dtype=np.uint8)
    ours = RunWriter(str(tmp_path), "ours")
    ours.images("x/img", data, step=4, description="*hello*")
    ours.close()
    with tf.summary.create_file_writer(str(tmp_path / "theirs")).as_default():
        tf.summary.image("x/img", data, step=4, max_outputs=3, description="*hello*")
        tf.summary.flush()
    meta_a, (a,) = tensors(tmp_path / "ours", "x/img")
    meta_b, (b,) = tensors(tmp_path / "theirs", "x/img")
    assert meta_a.plugin_data.plugin_name == meta_b.plugin_data.plugin_name == "images"
    assert meta_a.summary_description == meta_b.summary_description == "*hello*"
    assert list(a[:2]) == list(b[:2]) == [b"11", b"7"]  # width, height
    for png_a, png_b, expected in zip(a[2:], b[2:], data, strict=True):
        np.testing.assert_array_equal(decode_png(png_a), expected)
        np.testing.assert_array_equal(decode_png(png_b), expected)


def test_scalars_in_one_call_and_lazy_file_creation(tmp_path):
    writer = RunWriter(str(tmp_path), "run")
    assert not (tmp_path / "run").exists()  # nothing before the first write
    for step in range(3):
        writer.scalars({"a": step * 1.5, "b/c": -step}, step)
    writer.scalars({"a": 9.0}, 3)  # a different tag set gets its own compiled function
    writer.close()
    run = read_run(str(tmp_path / "run"))
    assert run.scalars["a"] == [(0, 0.0), (1, 1.5), (2, 3.0), (3, 9.0)]
    assert run.scalars["b/c"] == [(0, 0.0), (1, -1.0), (2, -2.0)]
    assert len(event_files(str(tmp_path / "run"))) == 1


def test_check_log_dir(tmp_path):
    check_log_dir(str(tmp_path / "new" / "deeper"))  # creatable: fine, and not created
    assert not (tmp_path / "new").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="which is a file"):
        check_log_dir(str(tmp_path / "f"))
    with pytest.raises(ValueError, match="not a writable directory"):
        check_log_dir(str(tmp_path / "f" / "below"))
    with pytest.raises(TypeError, match="`log_dir`"):
        check_log_dir(3)  # type: ignore[arg-type]


def test_scalars_trace_nothing_whatever_the_tags_or_the_writer(tmp_path, monkeypatch):
    def no_tf_function(*args, **kwargs):
        raise AssertionError("scalars must not build a tf.function (it would retrace)")

    monkeypatch.setattr(tf, "function", no_tf_function)
    for run, n in (("a", 3), ("b", 70)):  # a new writer and a new probe count
        writer = RunWriter(str(tmp_path), run)
        writer.scalars({f"s/probe_{i:02d}": i / 4 for i in range(n)}, 5)
        writer.close()
    assert read_run(str(tmp_path / "b")).scalars["s/probe_69"] == [(5, 69 / 4)]
