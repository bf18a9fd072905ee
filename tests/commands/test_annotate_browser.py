"""`saliency-callback annotate` end to end: the real command, its page in headless Chromium.

Draws a box on probe 0 and a brush stroke on probe 1, sets labels with the select and a key,
saves, and checks the saved probe file against the drawn regions (exactly for the box, within
the brush radius for the stroke); then reloads the page and reads the masks back from the
pixels it shows, and quits from the page. Every request must stay on 127.0.0.1.

Skipped when `/usr/bin/chromium` or the `playwright` package is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
from annotate_browser import annotate_server, drag, open_page, write_images
from tensorboard_browser import launch_chromium, missing_browser

pytestmark = [pytest.mark.timeout(120), pytest.mark.tf_only]  # backend-free

H, W = 40, 48
CLASSES = ["circle", "square", "triangle"]
DIM_ALPHA = 130  # what the page lays over the background (masks.js, `overlayPixels`)


@pytest.fixture(scope="module")
def browser():
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def capsule(a: tuple[float, float], b: tuple[float, float], radius: float) -> np.ndarray:
    """Pixels whose centre is within `radius` of the segment a-b (independent of masks.js)."""
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    (ax, ay), (bx, by) = a, b
    d = np.array([bx - ax, by - ay])
    t = np.clip(((xx - ax) * d[0] + (yy - ay) * d[1]) / float(d @ d), 0.0, 1.0)
    return np.hypot(ax + t * d[0] - xx, ay + t * d[1] - yy) <= radius


def shown_mask(page) -> np.ndarray:
    """The current probe's mask as the page shows it: pixels of the overlay not dimmed."""
    alpha = page.evaluate(
        """() => { const c = document.getElementById('overlay');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data
          .filter((_, i) => i % 4 === 3)); }"""
    )
    return np.array(alpha).reshape(H, W) != DIM_ALPHA


def test_draw_label_save_reload_quit(browser, tmp_path):
    from playwright.sync_api import expect

    write_images(tmp_path / "images", 4, (H, W), objects=False)  # no proposals: masks start empty
    out = tmp_path / "probes.npz"
    args = [str(tmp_path / "images"), "--out", str(out), "--class-names", ",".join(CLASSES)]
    with annotate_server(args) as server:
        page = open_page(browser, server.url)
        assert page.locator("#progress").text_content() == "0/4 checked"

        # probe 0: a box, from image point (5.3, 7.2) to (25.4, 30.3): x 5..25, y 7..30
        drag(page, [(5.3, 7.2), (25.4, 30.3)])
        page.select_option("#label", "1")
        box = np.zeros((H, W), bool)
        box[7:30, 5:25] = True

        # probe 1: a brush stroke of radius 3 (the default 6, three times "[")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("d")
        for _ in range(3):
            page.keyboard.press("[")
        a, b = (10.5, 12.5), (36.5, 24.5)
        drag(page, [a, b], steps=12)
        page.keyboard.press("2")
        assert page.locator("#progress").text_content() == "2/4 checked"

        page.click("#save")
        expect(page.locator("#status")).to_have_text("saved")
        with np.load(out) as saved:
            masks, labels, source = saved["masks"], saved["labels"], saved["source"]
            assert saved["images"].shape == (4, H, W, 3)
            assert list(saved["class_names"]) == CLASSES
            assert saved["checked"].tolist() == [True, True, False, False]
        np.testing.assert_array_equal(masks[0], box)
        # within the brush radius: everything within 3 - 0.5 px of the stroke is painted,
        # nothing beyond 3 + 0.5 px (mouse positions land on whole screen pixels)
        assert masks[1][capsule(a, b, 2.5)].all()
        assert not masks[1][~capsule(a, b, 3.5)].any()
        assert not masks[2:].any()
        assert labels.tolist() == [1, 2, -1, -1]
        assert source.tolist() == ["drawn", "drawn", "empty", "empty"]

        page.reload()
        page.wait_for_selector("html[data-ready]")
        np.testing.assert_array_equal(shown_mask(page), box)
        assert "1 square" in page.locator("#caption").text_content()
        page.keyboard.press("ArrowRight")
        np.testing.assert_array_equal(shown_mask(page), masks[1])
        assert page.locator("#progress").text_content() == "2/4 checked"

        page.click("#quit")
        page.wait_for_selector("#done:not([hidden])")
        code, stdout, stderr = server.stop(None)  # quit by the page
        assert code == 0, stderr
        assert "saved" in stdout and "2 drawn" in stdout
        assert not (tmp_path / "probes.autosave.npz").exists()
        assert page.errors == []
        assert page.requests and all(
            u.startswith(server.base + "/") or u.startswith("data:") for u in page.requests
        ), page.requests


def test_undo_skip_and_box_adjust(browser, tmp_path):
    from playwright.sync_api import expect

    write_images(tmp_path / "images", 3, (H, W), objects=False)
    out = tmp_path / "probes.npz"
    with annotate_server([str(tmp_path / "images"), "--out", str(out)]) as server:
        page = open_page(browser, server.url)
        drag(page, [(4.2, 4.2), (20.3, 20.3)])  # box 4..20
        drag(page, [(20.0, 12.0), (30.2, 12.0)])  # its right edge to x = 30
        page.keyboard.press("Enter")  # accept: on to the next unchecked probe
        drag(page, [(2.2, 2.2), (9.3, 9.3)])
        page.keyboard.press("z")  # undo the box of probe 1
        page.keyboard.press("x")  # skip probe 1
        page.click("#save")
        expect(page.locator("#status")).to_have_text("saved")
        with np.load(out) as saved:
            expected = np.zeros((H, W), bool)
            expected[4:20, 4:30] = True
            np.testing.assert_array_equal(saved["masks"][0], expected)
            assert saved["boxes"][0].tolist() == [4, 4, 30, 20]
            assert not saved["masks"][1].any()
            assert saved["skipped"].tolist() == [False, True, False]
            assert saved["source"].tolist() == ["drawn", "empty", "empty"]
        assert page.errors == []
