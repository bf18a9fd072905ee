"""Makes the docs' pictures of the Saliency tab: a real shortcut run next to a clean one.

Trains the demo's two models (`examples/shortcut_demo.py`: the same CNN on data whose background
agrees with the class on 95% vs 33% of the images, each with a `SaliencyCallback` and the
recommended alarm), unless `--logdir` already holds their runs; starts `tensorboard` with the
Saliency tab (`scripts/tensorboard_saliency.py`); opens the tab in headless Debian Chromium
(Playwright, never downloading a browser); shows the shortcut run next to the clean one, waits
until every visible thumbnail is decoded and saves the page; then clicks the shortcut run's
first probe at its first alarm step and saves the panel.

Run (from the repository root; a few minutes on 2 CPU cores, most of it training):
    python scripts/screenshot_dashboard.py
    python scripts/screenshot_dashboard.py --logdir logs/shortcut_demo   # reuse the demo's runs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tensorboard_browser import CHROMIUM, get_json, launch_chromium, missing_browser, tensorboard

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = (sys.executable, str(REPO / "scripts" / "tensorboard_saliency.py"))
RUNS = ("saliency_shortcut", "saliency_clean")  # the demo's run names
OUT = REPO / "docs" / "images" / "dashboard.png"

VISIBLE_LOADED = """() => {
  const imgs = [...document.querySelectorAll('img.sal-thumb')].filter((img) => {
    const r = img.getBoundingClientRect();
    const box = img.closest('.sal-grid-scroll').getBoundingClientRect();
    return r.right > box.left && r.left < box.right && r.top < Math.min(box.bottom, innerHeight);
  });
  return imgs.length > 0 && imgs.every((img) => img.complete && img.naturalWidth > 0);
}"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", help="log dir holding (or to receive) the demo's two runs")
    parser.add_argument("--out", default=str(OUT), help="PNG of the tab (%(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="demo epochs (%(default)s)")
    parser.add_argument("--n-train", type=int, default=3000, help="training images (%(default)s)")
    parser.add_argument("--width", type=int, default=1500, help="viewport (%(default)s)")
    parser.add_argument("--height", type=int, default=1250, help="viewport (%(default)s)")
    parser.add_argument(
        "--cells",
        default="saliency",
        choices=("saliency", "overlay", "image"),
        help="what the grid's cells show (%(default)s)",
    )
    parser.add_argument("--chromium", default=CHROMIUM, help="browser binary (%(default)s)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per wait")
    return parser.parse_args(argv)


def ensure_runs(log_dir: str, epochs: int, n_train: int) -> None:
    if all(os.path.isdir(os.path.join(log_dir, r)) for r in RUNS):
        print(f"reusing the runs in {log_dir}", flush=True)
        return
    import shortcut_demo

    shortcut_demo.run(log_dir, epochs=epochs, n_train=n_train)


def shoot(base: str, args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    timeout = args.timeout * 1000
    with sync_playwright() as p:
        browser = launch_chromium(p, chromium=args.chromium, timeout=timeout)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.set_default_timeout(timeout)
            page.goto(f"{base}#saliency", wait_until="domcontentloaded")
            frame: Any = page.wait_for_selector(
                'iframe[src*="plugin_entry.html?name=saliency"]'
            ).content_frame()
            frame.wait_for_selector(".sal-run")
            frame.select_option("#sal-run-a", RUNS[0])
            frame.select_option("#sal-run-b", RUNS[1])
            frame.select_option("#sal-tile", args.cells)
            frame.wait_for_selector(
                f'.sal-main.compare > .sal-run[data-run="{RUNS[0]}"]'
                f' + .sal-run[data-run="{RUNS[1]}"]'
            )
            frame.wait_for_function(VISIBLE_LOADED, polling=100)
            page.wait_for_timeout(300)
            page.screenshot(path=args.out)
            print(f"wrote {args.out}", flush=True)
            run = frame.locator(f'.sal-run[data-run="{RUNS[0]}"]')
            alarm = run.locator("th.sal-step.alarm").first
            step = alarm.get_attribute("data-step") if alarm.count() else "0"
            run.locator(f'td[data-step="{step}"][data-probe="0"]').click()
            frame.wait_for_selector(".sal-background-img")
            frame.wait_for_function(
                "() => [...document.querySelectorAll('.sal-dialog img')]"
                ".every((i) => i.complete && i.naturalWidth > 0)"
            )
            panel = args.out.replace(".png", "_panel.png")
            page.wait_for_timeout(300)
            page.screenshot(path=panel)
            print(f"wrote {panel}", flush=True)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_browser(args.chromium)
    if missing:
        print(f"cannot take the screenshot: {missing}", file=sys.stderr)
        return 1
    log_dir = args.logdir or tempfile.mkdtemp(prefix="screenshot_dashboard_")
    ensure_runs(log_dir, args.epochs, args.n_train)

    def ready(base: str) -> bool:
        return bool(get_json(f"{base}data/plugins_listing")["saliency"]["enabled"])

    log_file = os.path.join(log_dir, "tensorboard.log")
    with tensorboard(log_dir, ready, args.timeout, command=LAUNCHER, log_file=log_file) as base:
        shoot(base, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
