"""`saliency-callback report`: a log dir written by the callback -> one self-contained HTML/PNG.

The log dir is written by real `fit` calls; the command runs as a subprocess; the HTML is
opened in headless Chromium (skipped only when Chromium or Playwright is missing).
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import images, tiny_cnn
from helpers import ERROR_PREFIX, assert_one_line_error, console_script, run_parallel
from PIL import Image
from tb_events import read_run
from tensorboard_browser import launch_chromium, missing_browser

from saliency_callback.commands import cli
from saliency_callback.output import report
from saliency_callback.shortcuts.alarm import ShortcutAlarm
from saliency_callback.training.callback import SaliencyCallback
from saliency_callback.training.options import Runtime

SHAPE = (12, 12, 3)


def fit(model, callbacks, epochs):
    rng = np.random.default_rng(1)
    x, y = rng.random((16, *SHAPE)).astype(np.float32), rng.integers(0, 3, 16)
    model.compile("sgd", "sparse_categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the alarm warns
        model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, callbacks=callbacks)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """A log dir with two saliency runs and a Keras run; a foreign and an empty log dir."""
    root = tmp_path_factory.mktemp("report")
    log_dir = root / "logs"
    masks = np.zeros((3, 12, 12), bool)
    masks[:, 4:8, 4:8] = True
    watched = SaliencyCallback(
        images(3, SHAPE),
        np.array([0, 1, 2]),
        masks,
        log_dir=str(log_dir),
        class_names=["a", "b", "c"],
        runtime=Runtime(strict=True),
        alarm=ShortcutAlarm(0.99, monitor="mass_in_mask"),
    )
    fit(tiny_cnn(SHAPE), [watched, keras.callbacks.TensorBoard(str(log_dir))], epochs=3)
    plain = SaliencyCallback(
        images(2, SHAPE, seed=1),
        log_dir=str(log_dir / "second"),
        runtime=Runtime(strict=True),
    )
    fit(tiny_cnn(SHAPE, seed=1), [plain], epochs=12)  # 12 steps: more than TensorBoard keeps
    foreign = root / "foreign" / "train"
    with tf.summary.create_file_writer(str(foreign)).as_default():
        tf.summary.scalar("loss", 1.0, step=0)
        tf.summary.flush()
    (root / "empty").mkdir()
    script = [*console_script(), "report"]
    results = run_parallel(
        {
            "ok": [*script, "logs", "--out", "out/report.html", "--out", "out/timeline.png"],
            "empty": [*script, "empty", "--out", "empty.html"],
            "foreign": [*script, "foreign", "--out", "foreign.html"],
        },
        root,
    )
    return root, log_dir, watched, results


def expected_runs(log_dir: Path) -> dict[str, dict[int, list[np.ndarray]]]:
    """Run name -> step -> probe panels, read with TensorBoard's reader (tests/tb_events.py)."""
    out = {}
    for name in ("saliency", "second/saliency"):
        run = read_run(str(log_dir / name))
        out[name] = dict(run.images["saliency/probes"])
    return out


def data_uri_images(text: str) -> list[np.ndarray]:
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in found]


def test_report_html_holds_every_step_of_every_saliency_run(logs):
    root, log_dir, watched, results = logs
    ok = results["ok"]
    assert ok.returncode == 0, ok.stderr
    assert "Traceback" not in ok.stderr
    assert ok.stdout.split() == ["out/report.html", "out/timeline.png"]
    text = (root / "out" / "report.html").read_text(encoding="utf-8")
    expected = expected_runs(log_dir)
    # Self-contained: no script, no external resource.
    assert "<script" not in text and not re.search(r'(src|href)="(https?:|//|file:)', text)
    # Timeline: one cell per probe per logged step, in run order (sorted names), row-major.
    cells = re.findall(r'<td class="cell[^"]*" data-step="(-?\d+)" data-probe="(\d+)">', text)
    want = [
        (str(step), str(probe))
        for name in sorted(expected)
        for probe in range(len(next(iter(expected[name].values()))))
        for step in sorted(expected[name])
    ]
    assert cells == want
    assert len(cells) == 3 * 3 + 2 * 12
    # The embedded panels are the logged ones, pixel for pixel (small panels are not scaled).
    panels = data_uri_images(text)
    logged = [
        expected[name][int(step)][int(probe)]
        for name in sorted(expected)
        for step, probe in [
            (s, p)
            for p in range(len(next(iter(expected[name].values()))))
            for s in sorted(expected[name])
        ]
    ]
    assert len(panels) == len(logged)
    for got, want_panel in zip(panels, logged, strict=True):
        np.testing.assert_array_equal(got, want_panel)
    # Mass-in-mask curves only for the run with masks; alarms listed with their message.
    assert text.count('data-kind="mass_in_mask"') == 1
    assert text.count("<svg") == 3  # mass in mask + confidence, confidence
    assert watched.alarm_events
    for event in watched.alarm_events:
        assert html.escape(event.message) in text
    assert "No alarm was configured for this run." in text  # the second run
    assert "train" not in re.findall(r"<h2>Run <code>([^<]+)</code>", text)


def test_report_png_holds_the_timeline(logs):
    root, log_dir, _, results = logs
    assert results["ok"].returncode == 0
    timeline = np.asarray(Image.open(root / "out" / "timeline.png").convert("RGB"))
    expected = expected_runs(log_dir)
    ph, pw, _ = expected["saliency"][0][0].shape
    assert timeline.shape[0] > 3 * ph + 2 * ph
    assert timeline.shape[1] > 3 * pw
    # Every panel appears in the image: find each one's top-left pixel row exactly.
    for name, steps in expected.items():
        for panels in steps.values():
            for panel in panels:
                assert _find(timeline, panel), f"a panel of run {name} is missing from the PNG"


def _find(canvas: np.ndarray, patch: np.ndarray) -> bool:
    """Whether `patch` appears in `canvas` (searching row bytes for its last, busiest row)."""
    h, w, _ = patch.shape
    key = patch[-1].tobytes()
    for y in range(h - 1, canvas.shape[0]):
        line = canvas[y].tobytes()
        at = line.find(key)
        while at >= 0:
            x, top = at // 3, y - h + 1
            if at % 3 == 0 and np.array_equal(canvas[top : y + 1, x : x + w], patch):
                return True
            at = line.find(key, at + 1)
    return False


@pytest.mark.parametrize(
    "case, words",
    [("empty", ["empty log dir", "no TensorBoard event files"]), ("foreign", ["foreign log dir"])],
)
def test_report_errors_are_one_line_exit_1_and_write_nothing(logs, case, words):
    root, _, _, results = logs
    assert_one_line_error(results[case], 1, *words)
    assert not (root / f"{case}.html").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".saliency-report")]


def test_report_opens_in_headless_chromium(logs):
    missing = missing_browser()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    root, _, _, results = logs
    assert results["ok"].returncode == 0
    url = (root / "out" / "report.html").resolve().as_uri()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(url, wait_until="load")
            widths = page.evaluate(
                "Array.from(document.images, i => i.complete ? i.naturalWidth : 0)"
            )
            cells = page.locator("table.timeline td.cell").count()
            rows = page.locator("table.timeline tbody tr").count()
            charts = page.locator("svg.chart polyline").count()
            shown = page.locator("section.run").first.is_visible()
        finally:
            browser.close()
    assert len(widths) == 33 and all(w > 0 for w in widths)
    assert cells == 33 and rows == 3 + 2
    assert charts > 0 and shown


# ---------------------------------------------------------------------------------------------
# In-process: options and the reading API.
# ---------------------------------------------------------------------------------------------


def test_read_saliency_runs_keeps_all_steps_and_scalars(logs):
    _, log_dir, watched, _ = logs
    runs = report.read_saliency_runs(str(log_dir))
    assert [r.name for r in runs] == ["saliency", "second/saliency"]
    first, second = runs
    assert first.steps == [0, 1, 2] and second.steps == list(range(12))  # all, not 10
    assert first.num_probes == 3 and second.num_probes == 2
    assert [s for s, _ in first.scalars["saliency/mass_in_mask"]] == [0, 1, 2]
    assert [(s, m) for s, m in first.alarms] == [(e.step, e.message) for e in watched.alarm_events]
    assert first.has_alarm and not second.has_alarm
    assert "SmoothGrad(Vanilla()" in first.description


def test_options_max_steps_run_and_cell_width(logs, capsys, tmp_path):
    _, log_dir, _, _ = logs
    out = tmp_path / "r.html"
    code = cli.main(["report", str(log_dir), "--out", str(out), "--run", "second/saliency",
                     "--max-steps", "2", "--cell-width", "100", "--title", "T <1>"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    text = out.read_text()
    steps = re.findall(r'<td class="cell[^"]*" data-step="(-?\d+)"', text)
    assert steps == ["0", "11", "0", "11"]  # first and last step, two probes
    assert all(img.shape[1] == 100 for img in data_uri_images(text))
    assert "<title>T &lt;1&gt;</title>" in text
    assert report.select_steps(list(range(10)), 4) == [0, 3, 6, 9]
    assert report.select_steps([1, 2], None) == [1, 2]


def test_option_max_probes_keeps_the_first_probes(logs, capsys, tmp_path):
    _, log_dir, _, _ = logs
    out = tmp_path / "r.html"
    code = cli.main(["report", str(log_dir), "--out", str(out), "--run", "saliency",
                     "--max-probes", "1"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    cells = re.findall(r'<td class="cell[^"]*" data-step="(-?\d+)"', out.read_text())
    assert cells == ["0", "1", "2"]  # one probe row of three steps (three probes without it)
    expected = expected_runs(log_dir)["saliency"]
    for step, image in zip((0, 1, 2), data_uri_images(out.read_text()), strict=False):
        assert image.shape[1] == expected[step][0].shape[1]


def test_report_output_errors(logs, capsys, tmp_path):
    _, log_dir, _, _ = logs
    assert cli.main(["report", str(log_dir), "--out", str(tmp_path / "r.txt")]) == 2
    assert "expected a .html or .png" in capsys.readouterr().err
    assert cli.main(["report", str(log_dir), "--out", str(tmp_path / "r.html"), "--run", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(ERROR_PREFIX) and len(err.strip().splitlines()) == 1
    assert "no run 'x'" in err and "second/saliency" in err
    assert os.listdir(tmp_path) == []


def test_missing_log_dir(capsys, tmp_path):
    assert cli.main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")]) == 1
    assert "log dir not found" in capsys.readouterr().err


def test_svg_chart_breaks_lines_at_nan_and_marks_single_points():
    series = [
        report.Series("a", [(0, 0.1), (1, float("nan")), (2, 0.3), (3, 0.4)], "#000"),
        report.Series("b", [(5, 0.5)], "#111"),
    ]
    svg = report.svg_line_chart(series, title="t <x>", events=[(2.0, "alarm")])
    assert svg.count("<polyline") == 3  # a: [0], [2, 3]; b: [5]
    assert svg.count("<circle") == 2  # a's lone first point is a segment; b's lone point
    assert "<title>t &lt;x&gt;</title>" in svg
    assert 'stroke="#d62728"' in svg
