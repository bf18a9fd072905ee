"""Regenerates the docs' screenshot of `saliency-callback annotate` (docs/images/annotate.png).

Writes 16 probes of the synthetic shapes data (`saliency_callback.data.datasets`) as PNGs with a
labels CSV, runs the real command on them (`--class-names`, `--labels`), and drives its page in
headless Debian Chromium (Playwright) the way a user would: probes 0 and 1 accepted as they
are, probe 2 skipped, a new box dragged around the object of probes 3 and 4 (the object's
bounding box, from the data's true masks), an eraser stroke on probe 4, then a screenshot with
the brush over it. With `saliency_callback.shortcuts.proposals` installed, every probe starts
with its automatic proposal.

Run (from the repository root; about 20 seconds):
    python scripts/screenshot_annotate.py
    python scripts/screenshot_annotate.py --out shot.png

Needs `/usr/bin/chromium` (`apt-get install chromium`) and `playwright` (the test extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from annotate_browser import annotate_server, drag, image_point, open_page
from PIL import Image
from tensorboard_browser import CHROMIUM, launch_chromium, missing_browser

from saliency_callback.data.datasets import make_shortcut_data

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "images" / "annotate.png"


def write_probes(directory: Path, n: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """PNGs and `labels.csv` of `n` probes; returns the true masks and the class names."""
    data = make_shortcut_data(n, image_size=size, seed=seed, cue="distractor", num_classes=6)
    directory.mkdir(parents=True)
    rows = ["file,label"]
    for i, image in enumerate(data.images):
        name = f"probe_{i:02d}.png"
        Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(
            directory / name
        )
        rows.append(f"{name},{data.class_names[data.labels[i]]}")
    (directory.parent / "labels.csv").write_text("\n".join(rows) + "\n")
    return data.masks, list(data.class_names)


def bounding_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return cols[0] + 0.2, rows[0] + 0.2, cols[-1] + 1.2, rows[-1] + 1.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="PNG to write (%(default)s)")
    parser.add_argument("--num-probes", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()
    reason = missing_browser(args.chromium)
    if reason:
        sys.exit(f"cannot take the screenshot: {reason}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "probes"
        masks, classes = write_probes(images, args.num_probes, args.image_size, args.seed)
        command = [
            str(images), "--out", str(Path(tmp) / "probes.npz"),
            "--class-names", ",".join(classes), "--labels", str(Path(tmp) / "labels.csv"),
        ]  # fmt: skip
        with annotate_server(command) as server, sync_playwright() as playwright:
            browser = launch_chromium(playwright, args.chromium)
            page = open_page(browser, server.url, viewport=(1280, 760))
            page.keyboard.press("Enter")  # accept probes 0 and 1 as they are
            page.keyboard.press("Enter")
            page.keyboard.press("x")  # skip probe 2
            page.keyboard.press("ArrowRight")
            for i in (3, 4):  # a new box around the object (Shift: never grab a proposal's)
                x0, y0, x1, y1 = bounding_box(masks[i])
                page.keyboard.down("Shift")
                drag(page, [(x0, y0), (x1, y1)])
                page.keyboard.up("Shift")
                page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowLeft")  # back to probe 4: refine its box
            page.keyboard.press("e")
            x0, y0, x1, y1 = bounding_box(masks[4])
            drag(page, [(x0 + 1, y0 + 1), (x0 + 6, y0 + 4)], steps=8)
            page.keyboard.press("d")
            page.mouse.move(*image_point(page, (x0 + x1) / 2 + 4, (y0 + y1) / 2 + 2))
            page.wait_for_timeout(300)
            assert page.errors == [], page.errors
            page.screenshot(path=args.out)
            browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
