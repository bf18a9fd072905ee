"""`saliency-callback explain`, run as a user runs it: as a subprocess, on files.

The subprocesses (each pays for importing TensorFlow) are started together in one module
fixture and run side by side; the tests then check their outputs. Cheaper variations run
in-process through `cli.main`.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import ERROR_PREFIX, assert_one_line_error, console_script, run_parallel
from PIL import Image

from saliency_callback import compute_saliency
from saliency_callback.commands import cli
from saliency_callback.maps.methods import SmoothGrad, Vanilla
from saliency_callback.output.render import (
    Renderer,
    caption_height,
    colorize,
    gaussian_smooth,
    overlay,
    tile_size,
)

pytestmark = pytest.mark.tf_only  # the console script runs on TensorFlow (SavedModel loading)

SIZE = 16
NAMES = ["cat", "dog", "bird"]


def save_model(path: Path, shape=(SIZE, SIZE, 3), classes=3, seed=0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="tanh", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(classes, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    model.save(path)
    return model


def write_image(path: Path, shape, seed: int) -> np.ndarray:
    pixels = (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def preprocess(path: Path, size=(SIZE, SIZE), mode="RGB", scale=1 / 255) -> np.ndarray:
    """What the CLI is documented to do: convert, resize (bilinear), scale."""
    img = Image.open(path).convert(mode)
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    x = np.asarray(img, np.float32)
    return (x[..., None] if x.ndim == 2 else x) * np.float32(scale)


def decode(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        return np.asarray(img)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A model, a SavedModel, images and bad files; all subprocess runs, side by side."""
    root = tmp_path_factory.mktemp("cli")
    model = save_model(root / "model.keras")
    model.export(str(root / "saved"), verbose=False)
    keras.utils.set_random_seed(0)
    vec_in = keras.Input((12,))
    keras.Model(vec_in, keras.layers.Dense(3, activation="softmax")(vec_in)).save(
        root / "vector.keras"
    )
    write_image(root / "a.png", (SIZE, SIZE, 3), 1)
    write_image(root / "b.jpg", (20, 24, 3), 2)  # resized to the model's 16x16
    write_image(root / "c.png", (SIZE, SIZE), 3)  # grayscale, converted to RGB
    (root / "notes.png").write_text("not an image\n")
    (root / "fake.keras").write_text("not a model\n")
    explain = [*console_script(), "explain"]
    module = [sys.executable, "-m", "saliency_callback", "explain"]
    commands = {
        "ok": [
            *explain,
            "model.keras",
            "a.png",
            "b.jpg",
            "c.png",
            "--out",
            "out_ok",
            "--scale",
            "1/255",
            "--class-names",
            ",".join(NAMES),
        ],
        "saved": [*module, "saved", "a.png", "--out", "out_saved", "--scale", "1/255", "-q"],
        "missing_model": [*explain, "missing.keras", "a.png", "--out", "out_e1"],
        "missing_image": [*explain, "model.keras", "a.png", "missing.png", "--out", "out_e2"],
        "not_image": [*explain, "model.keras", "a.png", "notes.png", "--out", "out_e3"],
        "not_model": [*explain, "fake.keras", "a.png", "--out", "out_e4"],
        "misfit": [*explain, "vector.keras", "a.png", "--out", "out_e5"],
    }
    results = run_parallel(commands, root)
    return root, model, results


# ---------------------------------------------------------------------------------------------
# Subprocess runs.
# ---------------------------------------------------------------------------------------------


def test_explain_writes_maps_equal_to_compute_saliency(ws):
    root, model, results = ws
    result = results["ok"]
    assert result.returncode == 0, result.stderr
    out = root / "out_ok"
    names = ["a", "b", "c"]
    expected_files = {
        f"{n}{ext}" for n in names for ext in (".map.png", ".overlay.png", ".panel.png", ".npz")
    }
    assert set(os.listdir(out)) == expected_files | {"summary.csv"}

    x = np.stack([preprocess(root / f) for f in ("a.png", "b.jpg", "c.png")])
    maps = compute_saliency(model, x)
    probs = model.predict(x, verbose=0)
    smooth = gaussian_smooth(maps, 1.0)
    display = np.round(x * 255).astype(np.uint8)
    renderer = Renderer(sigma=1.0, colormap="inferno", alpha=0.5)
    panels = renderer.panels(display, maps)
    blended = overlay(display, smooth, colorize(smooth, "inferno"), 0.5)
    th, tw = tile_size(SIZE, SIZE)
    for i, name in enumerate(names):
        data = np.load(out / f"{name}.npz")
        np.testing.assert_allclose(data["input"], x[i], rtol=1e-6)
        np.testing.assert_allclose(data["map"], maps[i], atol=1e-5)
        np.testing.assert_allclose(data["smoothed"], smooth[i], atol=1e-5)
        np.testing.assert_allclose(data["outputs"], probs[i], rtol=1e-4, atol=1e-6)
        raw = compute_saliency(model, x[i : i + 1], reduction=None)[0]
        np.testing.assert_allclose(data["attributions"], raw, rtol=1e-4, atol=1e-7)
        assert int(data["target"]) == int(data["predicted"]) == int(probs[i].argmax())
        assert float(data["confidence"]) == pytest.approx(float(probs[i].max()), rel=1e-4)
        assert str(data["method"]) == "vanilla"

        gray = decode(out / f"{name}.map.png")
        assert gray.shape == (SIZE, SIZE) and gray.dtype == np.uint8
        np.testing.assert_allclose(gray / 255.0, maps[i], atol=0.5 / 255 + 1e-4)
        over = decode(out / f"{name}.overlay.png")
        assert over.shape == (SIZE, SIZE, 3)
        assert np.abs(over.astype(int) - blended[i]).max() <= 1
        panel = decode(out / f"{name}.panel.png")
        assert panel.shape == (caption_height() + th, 3 * tw + 4, 3)
        assert np.abs(panel[caption_height() :].astype(int) - panels[i]).max() <= 1

    # The table: file, predicted class name, confidence, peak in the file's own pixels.
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["file", "predicted", "confidence"]
    sizes = {"a.png": (SIZE, SIZE), "b.jpg": (20, 24), "c.png": (SIZE, SIZE)}
    for i, (line, file) in enumerate(zip(lines[1:], sizes, strict=True)):
        data = np.load(out / f"{names[i]}.npz")
        peak = np.unravel_index(np.argmax(data["smoothed"]), data["smoothed"].shape)
        assert tuple(data["peak"]) == peak
        row, col = data["peak_image"]
        assert 0 <= row < sizes[file][0] and 0 <= col < sizes[file][1]
        assert line.split()[:3] == [file, NAMES[probs[i].argmax()], f"{probs[i].max():.3f}"]
        assert line.endswith(f"({col}, {row})")
    with open(out / "summary.csv", newline="") as fh:
        assert [r["file"] for r in csv.DictReader(fh)] == list(sizes)
    # Says what it did to the images; shows progress.
    assert "resized 1 of 3 images to 16x16 (the model's input size)" in result.stderr
    assert "explain: 3/3 images" in result.stderr


def test_explain_loads_a_savedmodel_directory_with_python_m(ws):
    root, model, results = ws
    result = results["saved"]
    assert result.returncode == 0, result.stderr
    assert "explain:" not in result.stderr and "note:" not in result.stderr  # --quiet
    x = preprocess(root / "a.png")[None]
    wrapped = cli.load_saved_model(str(root / "saved"))
    data = np.load(root / "out_saved" / "a.npz")
    np.testing.assert_allclose(data["map"], compute_saliency(wrapped, x)[0], atol=1e-5)
    np.testing.assert_allclose(data["outputs"], model.predict(x, verbose=0)[0], rtol=1e-4)
    assert decode(root / "out_saved" / "a.panel.png").ndim == 3
    assert result.stdout.splitlines()[1].startswith("a.png")


@pytest.mark.parametrize(
    "case, words",
    [
        ("missing_model", ["model not found", "missing.keras"]),
        ("missing_image", ["image file not found", "missing.png"]),
        ("not_image", ["not an image", "notes.png"]),
        ("not_model", ["not a Keras model", "fake.keras"]),
        ("misfit", ["does not fit", "(None, 12)"]),
    ],
)
def test_explain_errors_are_one_line_exit_1_and_write_nothing(ws, case, words):
    root, _, results = ws
    assert_one_line_error(results[case], 1, *words)
    assert not any(p.name.startswith(("out_e", ".saliency-callback")) for p in root.iterdir())


# ---------------------------------------------------------------------------------------------
# In-process variations (same code path, no new interpreter).
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["explain"], ["report"]])
def test_help_for_every_command_has_examples(capsys, argv):
    assert cli.main([*argv, "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "usage: saliency-callback" in text
    assert "saliency-callback explain" in text or "saliency-callback report" in text


@pytest.mark.parametrize(
    "argv, words",
    [
        (["explain", "model.keras"], ["required", "IMAGE"]),
        (["explain", "m.keras", "a.png", "--out", "o", "--size", "big"], ["--size", "HxW"]),
        (["explain", "m.keras", "a.png", "--out", "o", "--scale", "0"], ["--scale"]),
        (["explain", "m.keras", "a.png", "--out", "o", "--target", "cat"], ["--target"]),
        (["explain", "m.keras", "a.png", "--out", "o", "--colormap", "nope"], ["colormap"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, argv, words):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(ERROR_PREFIX)
    for word in words:
        assert word in err


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--size", "8x8"], ["does not fit", "height 16"]),
        (["--target", "7"], ["--target 7", "[0, 3)"]),
        (["--class-names", "a,b"], ["--class-names has 2 names", "3 classes"]),
    ],
)
def test_arguments_that_do_not_fit_the_model(ws, capsys, tmp_path, extra, words):
    root = ws[0]
    code, _, err = _main(capsys, "explain", str(root / "model.keras"), str(root / "a.png"),
                         "--out", str(tmp_path / "out"), *extra)  # fmt: skip
    assert code == 1
    assert err.startswith(ERROR_PREFIX) and len(err.strip().splitlines()) == 1
    for word in words:
        assert word in err
    assert os.listdir(tmp_path) == []


def test_a_failure_midway_leaves_nothing_behind(ws, capsys, tmp_path):
    root = ws[0]
    good = root / "a.png"
    png = io.BytesIO()
    Image.fromarray(decode(good)).save(png, format="PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png.getvalue()[: len(png.getvalue()) // 2])  # header reads, pixels not
    out = tmp_path / "results" / "run1"
    code, _, err = _main(capsys, "explain", str(root / "model.keras"), str(good), str(good),
                         str(truncated), "--out", str(out), "--batch-size", "1")  # fmt: skip
    assert code == 1 and "truncated.png" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["truncated.png"]


def test_existing_out_dir_keeps_other_files_and_names_stay_unique(ws, capsys, tmp_path):
    root = ws[0]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    shutil.copy(root / "a.png", tmp_path / "d1" / "a.png")
    shutil.copy(root / "c.png", tmp_path / "d2" / "a.png")
    code, stdout, _ = _main(capsys, "explain", str(root / "model.keras"),
                            str(tmp_path / "d1" / "a.png"), str(tmp_path / "d2" / "a.png"),
                            "--out", str(out), "--scale", "1/255", "--target", "1")  # fmt: skip
    assert code == 0
    files = sorted(os.listdir(out))
    assert "keep.txt" in files and "a.npz" in files and "a-2.npz" in files
    assert not any(f.startswith(".") for f in files)
    assert int(np.load(out / "a-2.npz")["target"]) == 1
    assert "explained" in stdout.splitlines()[0]


def test_method_options_match_the_library(ws, capsys, tmp_path):
    root = ws[0]
    model = ws[1]
    code, _, _ = _main(capsys, "explain", str(root / "model.keras"), str(root / "a.png"),
                       "--out", str(tmp_path), "--method", "smoothgrad", "--samples", "3",
                       "--scale", "1/255", "--sigma", "0")  # fmt: skip
    assert code == 0
    x = preprocess(root / "a.png")[None]
    expected = compute_saliency(model, x, SmoothGrad(Vanilla(), n_samples=3))[0]
    data = np.load(tmp_path / "a.npz")
    np.testing.assert_allclose(data["map"], expected, atol=1e-5)
    np.testing.assert_array_equal(data["smoothed"], data["map"])  # --sigma 0


def test_a_model_of_any_size_keeps_each_image_size(capsys, tmp_path):
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="tanh")(inp)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    model.save(tmp_path / "any.keras")
    write_image(tmp_path / "small.png", (10, 12, 3), 4)
    write_image(tmp_path / "tall.png", (18, 8), 5)
    code, _, err = _main(capsys, "explain", str(tmp_path / "any.keras"),
                         str(tmp_path / "small.png"), str(tmp_path / "tall.png"),
                         "--out", str(tmp_path / "o"))  # fmt: skip
    assert code == 0, err
    assert decode(tmp_path / "o" / "small.map.png").shape == (10, 12)
    assert decode(tmp_path / "o" / "tall.map.png").shape == (18, 8)
    x = preprocess(tmp_path / "small.png", (10, 12), mode="L", scale=1.0)[None]
    data = np.load(tmp_path / "o" / "small.npz")
    np.testing.assert_allclose(data["map"], compute_saliency(model, x)[0], atol=1e-5)
    assert "converted 1 of 2 images to grayscale" in err


def test_parse_helpers():
    assert cli.parse_size("224x160") == (224, 160)
    assert cli.parse_size("32") == (32, 32)
    assert cli.parse_scale("1/255") == pytest.approx(1 / 255)
    assert cli.parse_scale("0.5") == 0.5
    assert cli.parse_target("predicted") == "predicted"
    assert cli.parse_target("3") == 3


def test_progress_on_a_pipe_and_on_a_terminal():
    pipe = io.StringIO()
    progress = cli.Progress("explain", 100, "images", stream=pipe)
    for i in range(101):
        progress.update(i)
    lines = pipe.getvalue().splitlines()
    assert lines[0] == "explain: 0/100 images" and lines[-1] == "explain: 100/100 images"
    assert len(lines) == 11  # about every tenth

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    progress = cli.Progress("report", 3, "steps", stream=tty)
    for i in (1, 2, 3):
        progress.update(i)
    assert tty.getvalue().count("\r") == 3 and tty.getvalue().endswith("3/3 steps\n")
    single = io.StringIO()
    cli.Progress("explain", 1, stream=single).update(1)  # one item: no progress shown
    assert single.getvalue() == ""
