"""The examples run (in their tiny `--quick` mode) and do what the guide says they do.

`image_folder.py` writes a folder of PNGs, trains a `keras.applications` backbone on it and
takes the probes from the validation dataset; `read_verdict.py` reads that log dir back and
writes the report. Checked against what is on disk: the probes the callback logged are
validation images (decoded from the folder), the run's event files (TensorBoard's reader), the
report's PNG (decoded).
"""

from __future__ import annotations

import importlib.util
import io
import pathlib
import runpy
import sys

import numpy as np
import pytest
from PIL import Image
from tb_events import read_run

EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"
QUICK_PROBES = 6


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("image_folder")
    data, logs = tmp / "data", tmp / "logs"
    module = load("image_folder")
    assert module.main(["--quick", "--data", str(data), "--logdir", str(logs)]) == 0
    return data, logs


@pytest.mark.tf_only
def test_image_folder_takes_its_probes_from_the_validation_folder(folder_run, capsys):
    data, logs = folder_run
    classes = sorted(p.name for p in (data / "train").iterdir())
    assert classes == ["circle", "square", "triangle"]
    val = {p.relative_to(data / "val") for p in (data / "val").rglob("*.png")}
    assert val == {p.relative_to(data / "val_masks") for p in (data / "val_masks").rglob("*.png")}
    run = read_run(str(logs / "saliency"))
    assert [s for s, _ in run.images["saliency/probes"]] == [0, 1]
    assert len(run.images["saliency/probes"][0][1]) == QUICK_PROBES
    # masks came with the probes: the background tests ran and the alarm was evaluated
    assert "saliency/background/reliance" in run.scalars
    assert [s for s, _ in run.scalars["saliency/alarm"]] == [0, 1]
    # the probe tiles are validation images: the panel's image tile matches one decoded from
    # the folder (the tile is the 32-px image upscaled by an integer factor, under a caption)
    panel = run.images["saliency/probes"][0][1][0]
    images = [np.asarray(Image.open(data / "val" / p)) for p in sorted(val)]
    factor = panel.shape[1] // 3 // 32
    tile = panel[-32 * factor :, : 32 * factor][::factor, ::factor]
    assert min(np.abs(tile.astype(int) - im.astype(int)).max() for im in images) <= 1
    assert (logs / "train").is_dir()  # Keras's TensorBoard callback wrote next to it


@pytest.mark.tf_only
def test_read_verdict_prints_the_runs_and_writes_the_report(folder_run, capsys, monkeypatch):
    _, logs = folder_run
    out_prefix = logs / "report"
    monkeypatch.setattr(sys, "argv", ["read_verdict.py", str(logs), "--out", str(out_prefix)])
    runpy.run_path(str(EXAMPLES / "read_verdict.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "run 'saliency': 6 probes, logged steps [0, 1]" in out
    assert "reliance" in out
    assert ("SHORTCUT (alarm at step" in out) or ("no alarm in 2 logged steps" in out)
    html = (logs / "report.html").read_text()
    assert "<html" in html.lower() and "saliency" in html
    png = Image.open(io.BytesIO((logs / "report.png").read_bytes()))
    assert png.size[0] > 0 and png.size[1] > 0
