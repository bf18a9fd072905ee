"""The probe file: its arrays, atomic writes, the autosave, and how the callback and `explain`
read it."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from conftest import tiny_cnn

from saliency_callback.commands import cli
from saliency_callback.data.probe_file import (
    ProbeFile,
    ProbeFileError,
    autosave_path,
    read_autosave,
    read_probe_file,
    write_autosave,
    write_probe_file,
)
from saliency_callback.training.callback import SaliencyCallback
from saliency_callback.training.options import Runtime

N, H, W = 4, 12, 12


def probes(seed: int = 0) -> ProbeFile:
    rng = np.random.default_rng(seed)
    masks = np.zeros((N, H, W), bool)
    masks[0, 2:8, 3:9] = True
    masks[1, 4:, :5] = True
    masks[2, 1:3, 1:3] = True
    return ProbeFile(
        images=rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8),
        masks=masks,
        labels=np.array([0, 2, 1, -1]),
        class_names=["circle", "square", "triangle"],
        source=np.array(["drawn", "corrected", "proposed", "empty"]),
        checked=np.array([True, True, False, True]),
        skipped=np.array([False, False, False, True]),
        names=[f"img_{i}.png" for i in range(N)],
        proposal_method="grabcut",
    )


def test_round_trip_keeps_every_array(tmp_path):
    pf = probes()
    path = tmp_path / "probes.npz"
    write_probe_file(path, pf)
    with np.load(path, allow_pickle=False) as raw:  # plain numpy reads it, no pickles
        assert raw["images"].dtype == np.uint8 and raw["masks"].dtype == bool
        assert str(raw["format"]) == "saliency_callback.data.probes/1"
    back = read_probe_file(path)
    np.testing.assert_array_equal(back.images, pf.images)
    np.testing.assert_array_equal(back.masks, pf.masks)
    assert back.labels.tolist() == [0, 2, 1, -1]
    assert back.class_names == pf.class_names and back.names == pf.names
    assert back.source.tolist() == ["drawn", "corrected", "proposed", "empty"]
    assert back.skipped.tolist() == [False, False, False, True]
    assert back.checked.tolist() == [True, True, False, True]
    assert back.describe("probes.npz") == (
        "probes.npz: 3 probes; masks: 1 drawn, 1 corrected, 1 proposed (1 unchecked); "
        "1 skipped; proposals: grabcut"
    )


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "probes.npz"
    write_probe_file(path, probes(0))
    before = path.read_bytes()

    def fail(fh, **arrays):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(OSError, match="disk full"):
        write_probe_file(path, probes(1))
    assert path.read_bytes() == before  # the old file, whole
    assert sorted(os.listdir(tmp_path)) == ["probes.npz"]  # no temporary file left


def test_autosave_belongs_to_its_images(tmp_path):
    pf = probes()
    side = autosave_path(tmp_path / "probes.npz")
    assert side.endswith("probes.autosave.npz")
    assert read_autosave(side, pf.images) is None
    pf.masks[3, 5, 5] = True
    write_autosave(side, pf)
    with np.load(side) as raw:
        assert "images" not in raw.files  # the sidecar holds the annotations only
    back = read_autosave(side, pf.images)
    np.testing.assert_array_equal(back.masks, pf.masks)
    with pytest.raises(ProbeFileError, match=r"other images.*--force"):
        read_autosave(side, pf.images[::-1].copy())


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"images": np.zeros((2, 4, 4, 3))}, "has no masks, source, skipped"),
        ({"x": np.zeros(3)}, "has no images"),
    ],
)
def test_not_a_probe_file(tmp_path, arrays, words):
    path = tmp_path / "other.npz"
    np.savez(path, **arrays)
    with pytest.raises(ProbeFileError, match=words):
        read_probe_file(path)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ProbeFileError, match="probe file not found"):
        read_probe_file(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(ProbeFileError, match="cannot read probe file"):
        read_probe_file(junk)
    with pytest.raises(ProbeFileError, match=r"`masks` of shape \(4, 12, 12\)"):
        ProbeFile(images=np.zeros((N, H, W, 3)), masks=np.zeros((N, H, W + 1)))
    with pytest.raises(ProbeFileError, match="`source` values"):
        ProbeFile(images=np.zeros((1, H, W, 3)), masks=np.zeros((1, H, W)), source=["maybe"])
    with pytest.raises(ProbeFileError, match="3 `class_names`"):
        ProbeFile(
            images=np.zeros((1, H, W, 3)),
            masks=np.zeros((1, H, W)),
            labels=[5],
            class_names=["a", "b", "c"],
        )


def test_for_callback_leaves_out_skipped_and_refuses_partial_labels():
    pf = probes()
    arrays = pf.for_callback()
    assert len(arrays["images"]) == 3 and arrays["labels"].tolist() == [0, 2, 1]
    np.testing.assert_array_equal(arrays["masks"], pf.masks[:3])
    pf.labels[1] = -1
    with pytest.raises(ProbeFileError, match=r"probes \[1\] have no label"):
        pf.for_callback()
    pf.labels[:] = -1
    assert pf.for_callback()["labels"] is None
    pf.masks[:] = False
    assert pf.for_callback()["masks"] is None
    pf.skipped[:] = True
    with pytest.raises(ProbeFileError, match="every probe is skipped"):
        pf.for_callback()


def test_from_probe_file_feeds_a_real_fit(tmp_path):
    path = tmp_path / "probes.npz"
    pf = probes()
    write_probe_file(path, pf)
    cb = SaliencyCallback.from_probe_file(
        path, log_dir=str(tmp_path / "logs"), method="vanilla", runtime=Runtime(strict=True)
    )
    assert len(cb.probes) == 3  # the skipped probe is left out
    np.testing.assert_array_equal(cb.probes.masks, pf.masks[:3])
    assert cb.probes.labels.tolist() == [0, 2, 1]
    assert cb.class_names == ["circle", "square", "triangle"]
    assert "Probes from probes.npz: 3 probes; masks: 1 drawn, 1 corrected" in cb._description
    model = tiny_cnn(shape=(H, W, 3))
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((8, H, W, 3)).astype(np.float32)
    model.fit(x, np.arange(8) % 3, epochs=1, batch_size=8, verbose=0, callbacks=[cb])
    cb.flush()
    assert [step for step, _ in cb.history["mass_in_mask"]] == [0]
    with pytest.raises(TypeError, match="takes the probes from the file; received masks"):
        SaliencyCallback.from_probe_file(path, masks=pf.masks)


@pytest.mark.tf_only  # the console script runs on TensorFlow
def test_explain_reads_the_probes_of_a_probe_file(tmp_path, capsys):
    path = tmp_path / "probes.npz"
    write_probe_file(path, probes())
    keras.utils.set_random_seed(0)
    model = tiny_cnn(shape=(H, W, 3))
    model.save(tmp_path / "model.keras")
    out_dir = tmp_path / "explained"
    argv = ["explain", str(tmp_path / "model.keras"), str(path), "--out", str(out_dir), "-q"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    rows = (out_dir / "summary.csv").read_text().splitlines()
    # the skipped probe 3 is left out; files are named after the probes' names
    assert [r.split(",")[0] for r in rows[1:]] == [f"probes.npz#{i}" for i in range(3)]
    assert sorted(p.name for p in out_dir.glob("*.npz")) == ["img_0.npz", "img_1.npz", "img_2.npz"]
    with np.load(out_dir / "img_1.npz") as explained:
        np.testing.assert_array_equal(explained["input"], probes().images[1].astype(np.float32))
