"""The Saliency tab end to end: a real `fit`, a real TensorBoard, headless Debian Chromium.

Two runs of 14 logged epochs: a hand-built model that reads only the background (its
predictions follow every background swap, so `ShortcutAlarm(0.5, monitor="background/flip_rate",
patience=3)` fires at step 2) and one that reads only the object. TensorBoard is started the
way a user starts it: plain `tensorboard` when the installed metadata holds the plugin's entry
point (CI's `pip install -e .`), else `scripts/tensorboard_saliency.py`.

Skipped when `/usr/bin/chromium` or the `playwright` package is missing.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hand_models import background_reader, entry_point_installed, object_reader, probe_set
from PIL import Image
from tb_events import read_run
from tensorboard_browser import get_json, launch_chromium, missing_browser, tensorboard

from saliency_callback.output.timeline import overlay_tiles
from saliency_callback.shortcuts.alarm import ShortcutAlarm
from saliency_callback.training.callback import SaliencyCallback
from saliency_callback.training.options import Runtime

pytestmark = [pytest.mark.timeout(180), pytest.mark.tf_only]

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 14
SHORTCUT, CLEAN = "shortcut/saliency", "clean/saliency"
SERVER_START_S = 60.0
UI_TIMEOUT_MS = 30_000
FRAME = 'iframe[src*="plugin_entry.html?name=saliency"]'


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> dict[str, Any]:
    """Two runs of `EPOCHS` logged epochs; returns the log dir and the shortcut's alarm steps."""
    path = tmp_path_factory.mktemp("dashboard_fit")
    alarms = {}
    for name, make, object_reads in (
        ("shortcut", background_reader, False),
        ("clean", object_reader, True),
    ):
        images, labels, masks = probe_set(object_reads_class=object_reads)
        cb = SaliencyCallback(
            images,
            labels,
            masks,
            log_dir=str(path / name),
            method="vanilla",
            class_names=["red", "green", "blue"],
            alarm=ShortcutAlarm(0.5, monitor="background/flip_rate", patience=3),
            runtime=Runtime(strict=True),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make().fit(images, labels, epochs=EPOCHS, verbose=0, callbacks=[cb])
        alarms[name] = [e.step for e in cb.alarm_events]
    assert alarms == {"shortcut": [2], "clean": []}  # the models' truth: read above
    return {"path": path, "alarms": alarms, "probes": len(images)}


def start_command(load_fast: str) -> tuple[list[str], bool]:
    """How to start TensorBoard: (command, whether through the installed entry point)."""
    if entry_point_installed():
        return [sys.executable, "-m", "tensorboard.main", "--load_fast", load_fast], True
    return [
        sys.executable,
        str(ROOT / "scripts" / "tensorboard_saliency.py"),
        "--load_fast",
        load_fast,
    ], False


def serve(log_dir: Path, out: Path, load_fast: str, ready) -> Any:
    command, _ = start_command(load_fast)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT))
    return tensorboard(
        str(log_dir), ready, SERVER_START_S, log_file=str(out), env=env, command=command
    )


def listing_has_saliency(base: str) -> bool:
    return "saliency" in get_json(f"{base}data/plugins_listing")


@pytest.fixture(scope="module")
def server(fitted, tmp_path_factory) -> Iterator[str]:
    out = tmp_path_factory.mktemp("dashboard_server") / "tensorboard.log"
    with serve(fitted["path"], out, "false", listing_has_saliency) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = missing_browser()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p, timeout=UI_TIMEOUT_MS)
        try:
            yield b
        finally:
            b.close()


def open_tab(browser: Any, base: str) -> tuple[Any, Any]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{base}#saliency", wait_until="domcontentloaded")
    frame = page.wait_for_selector(FRAME).content_frame()
    frame.wait_for_selector(".sal-app")
    return page, frame


@pytest.fixture(scope="module")
def tab(browser, server) -> Iterator[Any]:
    """The tab showing the shortcut run (run A) next to the clean run (run B)."""
    page, frame = open_tab(browser, server)
    frame.wait_for_selector(".sal-run")
    frame.select_option("#sal-run-a", SHORTCUT)
    frame.select_option("#sal-run-b", CLEAN)
    frame.wait_for_selector(
        f'.sal-main.compare > .sal-run[data-run="{SHORTCUT}"] + .sal-run[data-run="{CLEAN}"]'
    )
    yield frame
    page.close()


def all_thumbnails_loaded(frame: Any, run: str, expected: int) -> None:
    """Scrolls every thumbnail of `run` into view and waits until each one is decoded."""
    section = frame.locator(f'.sal-run[data-run="{run}"]')
    imgs = section.locator("img.sal-thumb")
    assert imgs.count() == expected
    frame.evaluate(  # each into view, one frame apart: the grid loads what comes into view
        """async (run) => {
            for (const img of document.querySelectorAll(`.sal-run[data-run="${run}"] img`)) {
                img.scrollIntoView({ block: "nearest", inline: "nearest" });
                await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
            }
        }""",
        run,
    )
    frame.wait_for_function(
        """(run) => [...document.querySelectorAll(`.sal-run[data-run="${run}"] img.sal-thumb`)]
            .every((img) => img.complete && img.naturalWidth > 0)""",
        arg=run,
        timeout=UI_TIMEOUT_MS,
    )


# -- tests -----------------------------------------------------------------------------------


def test_plugins_listing_lists_the_tab_through_the_entry_point_when_installed(server):
    entry = get_json(f"{server}data/plugins_listing")["saliency"]
    assert entry["enabled"] and entry["tab_name"] == "Saliency"
    assert entry["loading_mechanism"] == {
        "type": "IFRAME",
        "module_path": "/data/plugin/saliency/index.js",
    }
    _, through_entry_point = start_command("false")
    if not through_entry_point:
        pytest.skip("the installed metadata lacks the entry point: served by the launcher script")
    assert get_json(f"{server}data/plugin/saliency/runs")["runs"] == [CLEAN, SHORTCUT]


def test_every_probe_at_every_logged_step_loads(tab, fitted):
    for run in (SHORTCUT, CLEAN):
        all_thumbnails_loaded(tab, run, fitted["probes"] * EPOCHS)
    steps = tab.eval_on_selector_all(
        f'.sal-run[data-run="{SHORTCUT}"] th.sal-step', "ths => ths.map((t) => +t.dataset.step)"
    )
    assert steps == list(range(EPOCHS))


def test_each_thumbnail_shows_its_own_probe(tab, fitted):
    """The pixels the browser decoded, against the overlays in the event file (read with
    TensorBoard's reader): each cell is nearest to its own probe's overlay."""
    truth = read_run(str(fitted["path"] / "shortcut" / "saliency"))
    step = 9  # a step TensorBoard's 10-sample reservoir may drop
    overlays = overlay_tiles(np.stack(dict(truth.images["saliency/probes"])[step]), True)
    # (this model's saliency maps are alike: the overlays, which hold the image, tell apart)
    tab.select_option("#sal-tile", "overlay")
    tab.wait_for_selector(
        f'.sal-run[data-run="{SHORTCUT}"] img.sal-thumb[data-src*="tile=overlay"]'
    )
    all_thumbnails_loaded(tab, SHORTCUT, fitted["probes"] * EPOCHS)
    for probe in range(fitted["probes"]):
        pixels = tab.evaluate(
            """([run, step, probe]) => {
                const img = document.querySelector(
                  `.sal-run[data-run="${run}"] td[data-step="${step}"][data-probe="${probe}"] img`);
                const c = document.createElement("canvas");
                c.width = img.naturalWidth; c.height = img.naturalHeight;
                const g = c.getContext("2d"); g.drawImage(img, 0, 0);
                const data = g.getImageData(0, 0, c.width, c.height).data;
                return [c.width, c.height, Array.from(data)];
            }""",
            [SHORTCUT, step, probe],
        )
        width, height, rgba = pixels
        shown = np.asarray(rgba, np.uint8).reshape(height, width, 4)[..., :3].astype(int)
        errors = [
            np.abs(shown - np.asarray(Image.fromarray(o).resize((width, height)))).mean()
            for o in overlays
        ]
        assert int(np.argmin(errors)) == probe, errors
    tab.select_option("#sal-tile", "saliency")
    tab.wait_for_selector(
        f'.sal-run[data-run="{SHORTCUT}"] img.sal-thumb[data-src*="tile=saliency"]'
    )


def test_the_curve_and_the_verdict_mark_the_alarm(tab, fitted):
    (alarm_step,) = fitted["alarms"]["shortcut"]
    shortcut = tab.locator(f'.sal-run[data-run="{SHORTCUT}"]')
    verdict = shortcut.locator(".sal-verdict")
    assert verdict.get_attribute("data-state") == "alarm"
    assert f"first at step {alarm_step} (after epoch {alarm_step + 1})" in verdict.inner_text()
    assert "100% of background swaps change the predicted class" in verdict.inner_text()
    chart = shortcut.locator('svg.sal-chart[data-signal="background/flip_rate"]')
    marks = chart.locator("circle.sal-alarm-mark")
    assert [marks.nth(i).get_attribute("data-step") for i in range(marks.count())] == [
        str(alarm_step)
    ]
    assert chart.locator("path.sal-limit").count() == 1
    assert chart.locator(f'line.sal-alarm-rule[data-step="{alarm_step}"]').count() == 1
    header = shortcut.locator(f'th.sal-step[data-step="{alarm_step}"]')
    assert "alarm" in (header.get_attribute("class") or "")
    clean = tab.locator(f'.sal-run[data-run="{CLEAN}"] .sal-verdict')
    assert clean.get_attribute("data-state") == "clear"
    assert f"No alarm in {EPOCHS} checked steps" in " ".join(clean.inner_text().split())
    assert tab.locator(f'.sal-run[data-run="{CLEAN}"] circle.sal-alarm-mark').count() == 0


def test_clicking_a_cell_shows_its_panel_and_background_tests(tab, fitted):
    truth = read_run(str(fitted["path"] / "shortcut" / "saliency"))
    step, probe = 5, 1
    tab.locator(
        f'.sal-run[data-run="{SHORTCUT}"] td[data-step="{step}"][data-probe="{probe}"]'
    ).click()
    dialog = tab.locator(".sal-dialog")
    dialog.locator(".sal-background-img").wait_for()
    assert dialog.locator(".sal-dialog-title").inner_text() == (
        f"Probe #{probe} · step {step} (after epoch {step + 1})"
    )
    for selector, tag in (
        (".sal-panel-img", "saliency/probes"),
        (".sal-background-img", "saliency/background"),
    ):
        img = dialog.locator(selector)
        tab.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=img.element_handle()
        )
        size = img.evaluate("img => [img.naturalHeight, img.naturalWidth]")
        assert tuple(size) == dict(truth.images[tag])[step][probe].shape[:2]
    tab.locator("body").press("ArrowRight")
    tab.wait_for_function(
        "(t) => document.querySelector('.sal-dialog-title').textContent.includes(t)",
        arg=f"step {step + 1} ",
    )
    tab.locator("body").press("Escape")
    assert tab.locator(".sal-overlay").is_hidden()


def test_two_runs_side_by_side(tab):
    runs = tab.eval_on_selector_all(
        ".sal-main.compare > .sal-run", "s => s.map((x) => x.dataset.run)"
    )
    assert runs == [SHORTCUT, CLEAN]


def test_empty_state_then_a_run_appears_with_the_rust_data_server(browser, fitted, tmp_path):
    """`--load_fast true`: a log dir without our summaries shows the empty state; a run copied
    in later is found (through the Rust data server) by the open page itself, without a
    reload, and its grid loads in full."""
    from saliency_callback.output.writer import RunWriter

    train = RunWriter(str(tmp_path), run="train")
    train.scalars({"loss": 1.0}, 0)
    train.close()

    def ready(base: str) -> bool:
        return listing_has_saliency(base) and bool(get_json(f"{base}data/runs"))

    log = tmp_path / "tb.log"
    with serve(tmp_path, log, "true", ready) as base:
        page, frame = open_tab(browser, base)
        empty = frame.wait_for_selector(".sal-empty")
        text = " ".join(empty.inner_text().split())
        assert "No run here holds SaliencyCallback summaries yet" in text and "train" in text
        assert "SaliencyCallback(" in text
        shutil.copytree(fitted["path"] / "shortcut", tmp_path / "late")
        # (a locator, not the frame's handle: it finds the tab's iframe again if TensorBoard
        # draws it anew when the tab becomes active)
        section = page.frame_locator(FRAME).locator('.sal-run[data-run="late/saliency"]')
        try:
            section.wait_for(timeout=3 * UI_TIMEOUT_MS)
        except Exception as err:  # say what the server listed and logged
            listed = get_json(f"{base}data/plugin/saliency/runs")
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{err}\nlisted: {listed}\ntensorboard's log:\n{tail}") from err
        frame = page.wait_for_selector(FRAME).content_frame()
        all_thumbnails_loaded(frame, "late/saliency", fitted["probes"] * EPOCHS)
        page.close()
