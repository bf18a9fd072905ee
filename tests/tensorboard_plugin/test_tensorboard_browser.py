"""End to end: a real `fit` with `SaliencyCallback`, a real TensorBoard server, a real browser.

Trains a tiny CNN for a few epochs into a temporary log dir, starts `tensorboard` on a free
loopback port, and checks both the images plugin's data API and what headless Chromium
(driven by Playwright) renders on the images dashboard: the `saliency` run, the
`saliency/overview` and `saliency/probes` cards, their decoded PNGs and the step slider.

The browser tests are skipped when `/usr/bin/chromium` or the `playwright` package is missing
(CI installs both, see `.ci/run`); Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import images, tiny_cnn
from PIL import Image
from tensorboard_browser import (
    OVERVIEW,
    PROBES,
    RUN,
    get,
    get_json,
    images_url,
    launch_chromium,
    missing_browser,
    served_steps,
    tensorboard,
)

from saliency_callback.training.callback import SaliencyCallback
from saliency_callback.training.options import Runtime

pytestmark = [pytest.mark.timeout(120), pytest.mark.tf_only]  # backend-free, slow

EPOCHS, NUM_PROBES, SHAPE = 3, 4, (12, 12, 3)
TIMELINE = "saliency/timeline"
STEPS = list(range(EPOCHS))  # step e is the end of epoch e
SERVER_START_S = 45.0  # TensorBoard imports TensorFlow: a few seconds on a slow runner
UI_TIMEOUT_MS = 20_000


# --- training -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log dir holding one `saliency` run with `EPOCHS` logged steps."""
    path = tmp_path_factory.mktemp("tb_browser_logs")
    model = tiny_cnn(shape=SHAPE)
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.random((16, *SHAPE)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    cb = SaliencyCallback(
        images(NUM_PROBES, SHAPE),
        np.array([0, 1, 2, 0]),
        log_dir=str(path),
        class_names=["circle", "square", "triangle"],
        runtime=Runtime(strict=True),
    )
    model.fit(x, y, epochs=EPOCHS, batch_size=8, verbose=0, callbacks=[cb])
    return path


# --- TensorBoard server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a `tensorboard` serving `log_dir`, once it serves every logged step."""
    out = tmp_path_factory.mktemp("tb_server") / "tensorboard.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    with tensorboard(
        str(log_dir),
        lambda base: served_steps(base, OVERVIEW) == STEPS,
        SERVER_START_S,
        log_file=str(out),
        env=env,
    ) as base:
        yield base


def exits_at_once(message: str) -> list[str]:
    """A stand-in for TensorBoard that prints `message` to stderr and exits with 1."""
    return [sys.executable, "-c", f"import sys; sys.stderr.write({message!r}); sys.exit(1)"]


@pytest.mark.parametrize("with_pkg_resources", [True, False])
def test_server_that_dies_at_start_fails_at_once_with_its_output(tmp_path, with_pkg_resources):
    message = "Traceback (most recent call last):\n  ...\n"
    if with_pkg_resources:  # what TensorBoard 2.16-2.20 prints next to setuptools >= 82
        message += "ModuleNotFoundError: No module named 'pkg_resources'\n"
    else:
        message += "OSError: something else\n"
    # `ready` never holds: only noticing the exit (not the 60 s timeout) ends the wait.
    with (
        pytest.raises(RuntimeError, match="tensorboard exited with 1 before serving") as info,
        tensorboard(
            str(tmp_path),
            lambda base: False,
            60.0,
            log_file=str(tmp_path / "tb.log"),
            command=exits_at_once(message),
        ),
    ):
        pytest.fail("yielded a server that exited")
    error = str(info.value)
    assert message in error  # the end of its output
    fixes = ['pip install -U "tensorboard>=2.21"', 'pip install "setuptools<82"']
    assert all((fix in error) == with_pkg_resources for fix in fixes), error


# --- browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Any]:
    """Headless Debian Chromium on the images dashboard, with its run list loaded."""
    missing = missing_browser()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p, timeout=UI_TIMEOUT_MS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.set_default_timeout(UI_TIMEOUT_MS)
            pg.set_default_navigation_timeout(UI_TIMEOUT_MS)
            pg.goto(f"{server}#images", wait_until="domcontentloaded")
            yield pg
        finally:
            browser.close()


def card(page: Any, tag: str) -> Any:
    """The image cards (`tf-image-loader`) whose title is exactly `tag`."""
    title = page.locator("tf-card-heading .heading-label.name").filter(
        has_text=re.compile(rf"^\s*{re.escape(tag)}\s*$")
    )
    return page.locator("tf-image-loader").filter(has=title)


def wait_loaded(page: Any, img: Any) -> tuple[int, int]:
    """Waits until the browser decoded `img`'s current `src`; returns its natural size."""
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0 && img.currentSrc === img.src",
        arg=img.element_handle(),
        timeout=UI_TIMEOUT_MS,
    )
    width, height = img.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    return int(width), int(height)


def png_size(base: str, query: str) -> tuple[int, int]:
    data = get(f"{base}data/plugin/images/individualImage?{query}")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


# --- tests ----------------------------------------------------------------------------------


def test_data_api_serves_every_logged_step_of_both_image_tags(server):
    assert get_json(f"{server}data/runs") == [RUN]
    tags = get_json(f"{server}data/plugin/images/tags")
    assert set(tags) == {RUN}
    # (and saliency/probe_boxes, written once: the background tests are on by default)
    assert set(tags[RUN]) == {OVERVIEW, PROBES, TIMELINE, "saliency/probe_boxes"}
    assert tags[RUN][OVERVIEW]["samples"] == tags[RUN][TIMELINE]["samples"] == 1
    assert tags[RUN][PROBES]["samples"] == NUM_PROBES
    for tag, samples in ((OVERVIEW, 1), (PROBES, NUM_PROBES), (TIMELINE, 1)):
        for sample in range(samples):
            entries = get_json(images_url(server, tag, sample))
            assert [e["step"] for e in entries] == STEPS, (tag, sample)
            width, height = png_size(server, entries[-1]["query"])
            assert width > 0 and height > 0


def test_dashboard_lists_the_saliency_run(page):
    from playwright.sync_api import expect

    runs = page.locator("tf-runs-selector")
    expect(runs.get_by_text(RUN, exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(runs.locator(f"paper-checkbox#checkbox-{RUN}")).to_have_attribute(
        "aria-checked", "true", timeout=UI_TIMEOUT_MS
    )


@pytest.mark.parametrize(("tag", "samples"), [(OVERVIEW, 1), (PROBES, NUM_PROBES)])
def test_dashboard_renders_the_card_images(page, server, tag, samples):
    from playwright.sync_api import expect

    cards = card(page, tag)
    expect(cards).to_have_count(samples, timeout=UI_TIMEOUT_MS)
    for sample in range(samples):
        one = cards.nth(sample)
        expect(one.locator("#heading-run")).to_have_text(RUN, timeout=UI_TIMEOUT_MS)
        if samples > 1:
            expect(one).to_contain_text(f"sample: {sample + 1} of {samples}")
        # The card opens on the last step; its <img> shows that step's PNG, decoded.
        last = get_json(images_url(server, tag, sample))[-1]
        img = one.locator("img")
        expect(img).to_have_count(1)
        expect(img).to_have_attribute("src", re.compile(re.escape(last["query"])))
        assert wait_loaded(page, img) == png_size(server, last["query"])


def test_step_slider_reaches_every_logged_epoch(page, server):
    from playwright.sync_api import expect

    overview = card(page, OVERVIEW)
    entries = get_json(images_url(server, OVERVIEW))
    slider = overview.locator("paper-slider#steps")
    step = overview.locator(".heading-label", has_text=re.compile(r"^\s*step\b"))
    img = overview.locator("img")
    expect(slider).to_have_attribute("aria-valuemin", "0", timeout=UI_TIMEOUT_MS)
    expect(slider).to_have_attribute("aria-valuemax", str(len(STEPS) - 1))
    # Walk the slider from the last step down to the first and back (leaving the page as it
    # was for the other tests): at each step the card shows that step's own image, decoded.
    position = len(STEPS) - 1  # a card opens on its last step
    for index in [*reversed(range(len(STEPS))), *range(1, len(STEPS))]:
        if index != position:
            slider.press("ArrowLeft" if index < position else "ArrowRight")
            position = index
        expect(slider).to_have_attribute("aria-valuenow", str(index))
        expect(step).to_have_text(re.compile(rf"^\s*step\s+{STEPS[index]}\s*$"))
        expect(img).to_have_attribute("src", re.compile(re.escape(entries[index]["query"])))
        width, height = wait_loaded(page, img)
        assert width > 0 and height > 0
