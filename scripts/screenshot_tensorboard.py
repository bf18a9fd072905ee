"""Regenerates the README's screenshot of the TensorBoard images dashboard.

Trains a small CNN on the synthetic shortcut data (`saliency_callback.data.datasets`) with a
`SaliencyCallback` on 8 test probes, starts `tensorboard` on a free loopback port, opens its
images dashboard in headless Debian Chromium (driven by Playwright, never downloading a
browser), waits until every saliency image is decoded and saves a PNG of the page.

Run (from the repository root; about a minute on 2 CPU cores):
    python scripts/screenshot_tensorboard.py
    python scripts/screenshot_tensorboard.py --logdir logs/screenshot --out shot.png

Needs `/usr/bin/chromium` (`apt-get install chromium`) and `playwright` (the test extra).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import numpy as np
from shortcut_demo import build_model  # the demo's small CNN
from tensorboard_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    OVERVIEW,
    PROBES,
    RUN,
    launch_chromium,
    missing_browser,
    served_steps,
    tensorboard,
)

from saliency_callback.data.datasets import make_shortcut_splits
from saliency_callback.training.callback import SaliencyCallback

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "images" / "tensorboard_dashboard.png"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", help="TensorBoard log dir (default: a new temporary dir)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="PNG to write (%(default)s)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs to train (%(default)s)")
    parser.add_argument("--num-train", type=int, default=1500, help="training images (%(default)s)")
    parser.add_argument("--image-size", type=int, default=48, help="image side, px (%(default)s)")
    parser.add_argument("--num-probes", type=int, default=8, help="test probes (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data and model seed (%(default)s)")
    parser.add_argument("--chromium", default=CHROMIUM, help="browser binary (%(default)s)")
    parser.add_argument("--width", type=int, default=1400, help="viewport (%(default)s)")
    parser.add_argument("--height", type=int, default=1000, help="viewport (%(default)s)")
    parser.add_argument(
        "--fit-images",
        dest="actual_size",
        action="store_false",
        help="leave TensorBoard's 'Show actual image size' off (images shrunk to the cards)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per wait (%(default)s)"
    )
    return parser.parse_args(argv)


def say(*parts: Any) -> None:
    print(*parts, flush=True)


# --- training -------------------------------------------------------------------------------


def train(args: argparse.Namespace, log_dir: str) -> list[int]:
    """Trains into `log_dir`; returns the steps the callback logged."""
    train_data, test_data = make_shortcut_splits(
        args.num_train,
        200,
        agreement=0.95,
        image_size=args.image_size,
        num_classes=3,
        seed=args.seed,
    )
    # Probes: half with the background agreeing with the class, half disagreeing.
    half = args.num_probes // 2
    agree = np.flatnonzero(test_data.cue_agrees)[: args.num_probes - half]
    disagree = np.flatnonzero(~test_data.cue_agrees)[:half]
    probes = np.sort(np.concatenate([agree, disagree]))
    saliency = SaliencyCallback(
        test_data.images[probes],
        test_data.labels[probes],
        masks=test_data.masks[probes],
        log_dir=log_dir,
        class_names=list(test_data.class_names),
    )
    model = build_model(args.image_size, 3, args.seed)
    say(f"training {args.epochs} epochs on {args.num_train} images -> {log_dir}")
    model.fit(
        train_data.images,
        train_data.labels,
        epochs=args.epochs,
        batch_size=64,
        validation_data=(test_data.images, test_data.labels),
        callbacks=[saliency],
        verbose=2,
    )
    return list(range(args.epochs))


# --- screenshot -----------------------------------------------------------------------------


def screenshot(args: argparse.Namespace, base: str, out: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ms = int(args.timeout * 1000)
    url = f"{base}#images"
    say("$", shlex.join([args.chromium, *CHROMIUM_ARGS]), "# via playwright.sync_api")
    say("  open", url, f"at {args.width}x{args.height}")
    with sync_playwright() as p:
        browser = launch_chromium(p, args.chromium, timeout=ms)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.set_default_timeout(ms)
            page.goto(url, wait_until="domcontentloaded")
            expect(page.locator("tf-runs-selector").get_by_text(RUN, exact=True)).to_be_visible(
                timeout=ms
            )
            title = page.locator("tf-card-heading .heading-label.name").filter(
                has_text=re.compile(r"^\s*saliency/(overview|probes)\s*$")
            )
            cards = page.locator("tf-image-loader").filter(has=title)
            expect(cards).to_have_count(1 + args.num_probes, timeout=ms)
            # Every saliency <img> decoded by the browser, not a spinner or a broken image.
            page.wait_for_function(
                """n => {
                    const imgs = [];
                    const walk = root => root.querySelectorAll('*').forEach(e => {
                        if (e.localName === 'img' && e.src.includes('individualImage')) {
                            imgs.push(e);
                        }
                        if (e.shadowRoot) walk(e.shadowRoot);
                    });
                    walk(document);
                    return imgs.length >= n && imgs.every(
                        i => i.complete && i.naturalWidth > 0 && i.currentSrc === i.src);
                }""",
                arg=1 + args.num_probes,
                timeout=ms,
            )
            if args.actual_size:  # readable captions: the overview at its own resolution
                toggle = page.locator("paper-checkbox", has_text="Show actual image size")
                toggle.click()
                expect(toggle).to_have_attribute("aria-checked", "true", timeout=ms)
                overview = cards.filter(has_text=OVERVIEW).locator("img")
                page.wait_for_function(
                    "img => img.complete && img.width === img.naturalWidth",
                    arg=overview.element_handle(),
                    timeout=ms,
                )
            page.mouse.move(0, args.height - 1)  # no hover effects in the picture
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), timeout=ms)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say("$", shlex.join([sys.executable, *sys.argv]))
    missing = missing_browser(args.chromium)
    if missing:
        say(f"error: {missing}")
        return 2
    log_dir = args.logdir or tempfile.mkdtemp(prefix="saliency_tb_")
    if any(Path(log_dir, RUN).glob("events.out.tfevents.*")):
        say(f"error: {Path(log_dir, RUN)} already holds a run; pass a new --logdir")
        return 2
    steps = train(args, log_dir)
    out = Path(args.out).resolve()

    def ready(base: str) -> bool:  # every logged step of both tags is served
        return all(served_steps(base, tag) == steps for tag in (OVERVIEW, PROBES))

    with tensorboard(log_dir, ready, args.timeout) as base:
        screenshot(args, base, out)
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
