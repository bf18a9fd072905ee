"""The Saliency tab's first paint and the TensorBoard server's memory, on a long synthetic run.

Writes a run of `--epochs` logged steps x `--probes` probes through the package's own writing
code (`worker.StepWriter`, as the callback's background writer does: probe panels, background
tests, overview, timeline, scalars, the alarm), without training; starts `tensorboard` with
the Saliency tab (`scripts/tensorboard_saliency.py`, whether or not the package is installed
with its entry point) and opens the tab in headless Debian Chromium (Playwright), then reports:

- shell: from navigation until the tab's iframe has run the module (TensorBoard's own page,
  the unavoidable part);
- first paint: from navigation until the verdict, the curves and every thumbnail in the grid's
  visible area are decoded (`naturalWidth > 0`); and the tab's own share, first paint - shell;
- whole grid: the time to scroll through the grid until all thumbnails are decoded;
- the server's resident memory (with its data-server child) after start, after the first paint,
  after the whole grid, and after a second whole pass (the caches are bounded).

Run (a few minutes: writing the run is most of it):
    nice python benchmarks/bench_dashboard.py                  # 100 epochs x 32 probes
    nice python benchmarks/bench_dashboard.py --epochs 400 --load-fast true
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

LAUNCHER = (sys.executable, str(REPO / "scripts" / "tensorboard_saliency.py"))
MONITOR = "background/flip_rate"


def write_synthetic_run(
    log_dir: str, epochs: int = 100, probes: int = 32, size: int = 32, seed: int = 0
) -> dict[str, Any]:
    """Writes `log_dir/saliency` as the callback would over `epochs` logged steps.

    The flip rate rises from 0 to 1 over the run; the alarm (threshold 0.5 on it) fires at the
    first step above. Returns what was written: `steps`, `alarm_step`, `flip_rate` by step.
    """
    from saliency_callback.output.render import Renderer
    from saliency_callback.output.timeline import Timeline
    from saliency_callback.output.writer import RunWriter
    from saliency_callback.training.worker import StepPayload, StepWriter

    rng = np.random.default_rng(seed)
    raw = rng.random((probes, size, size, 3)).astype(np.float32)
    stacks = [raw, raw[:, ::-1], raw[:, :, ::-1], raw[::-1]]
    writer = RunWriter(log_dir)
    step_writer = StepWriter(
        writer,
        Renderer(min_tile=64, max_tile=160),
        raw,
        description="Synthetic saliency (bench_dashboard).",
        timeline=Timeline(),
        background=(stacks, (0.0, 1.0)),
    )
    classes = ("cat", "dog", "bird")
    captions = [f"#{i} y={classes[i % 3]} pred={classes[i % 3]} 90%" for i in range(probes)]
    tiles = [[f"{classes[(i + v) % 3]} 80%" for i in range(probes)] for v in range(4)]
    flip_rate: dict[int, float] = {}
    alarm_step = None
    for step in range(epochs):
        flips = float(np.clip(step / max(epochs - 1, 1) + rng.normal(0, 0.05), 0, 1))
        flip_rate[step] = flips
        fired = alarm_step is None and flips > 0.5
        alarm_step = step if fired else alarm_step
        per_probe = rng.random(probes)
        scalars = {
            "saliency/" + MONITOR: flips,
            "saliency/background/reliance": flips * 0.9,
            "saliency/background/gap": flips * 0.7,
            "saliency/mass_in_mask": 1 - flips * 0.6,
            "saliency/mass_in_mask_chance": 0.2,
            "saliency/alarm": float(fired),
            "saliency/alarm_limit/" + MONITOR: 0.5,
            **{f"saliency/mass_in_mask/probe_{i:02d}": float(m) for i, m in enumerate(per_probe)},
        }
        message = f"Synthetic alarm at step {step}: flip rate {flips:.0%}." if fired else None
        maps = rng.random((probes, size, size)).astype(np.float32)
        step_writer.write(StepPayload(step, scalars, maps, captions, tiles, message))
    writer.close()
    return {"steps": list(range(epochs)), "alarm_step": alarm_step, "flip_rate": flip_rate}


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its descendants (Linux `/proc`), MiB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def server_pid(port: int) -> int:
    """The process serving on `port` (the one whose command line holds `--port PORT`)."""
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"--port" in args and args[args.index(b"--port") + 1 :][:1] == [str(port).encode()]:
            return int(entry)
    raise RuntimeError(f"no process serves port {port}")


VISIBLE_LOADED = """() => {
  const scroller = document.querySelector('.sal-grid-scroll');
  if (!scroller || !document.querySelector('.sal-verdict')) return false;
  if (!document.querySelector('.sal-chart')) return false;
  const box = scroller.getBoundingClientRect();
  const visible = [...scroller.querySelectorAll('img.sal-thumb')].filter((img) => {
    const r = img.getBoundingClientRect();
    return r.right > box.left && r.left < box.right && r.bottom > box.top && r.top < box.bottom
      && r.top < window.innerHeight;
  });
  return visible.length > 0 && visible.every((img) => img.complete && img.naturalWidth > 0);
}"""

ALL_LOADED = """() => {
  const imgs = [...document.querySelectorAll('img.sal-thumb')];
  return imgs.length > 0 && imgs.every((img) => img.complete && img.naturalWidth > 0);
}"""

SCROLL_STEP = """() => {
  const s = document.querySelector('.sal-grid-scroll');
  if (s.scrollLeft + s.clientWidth < s.scrollWidth - 1) {
    s.scrollLeft += s.clientWidth * 0.9;
    return false;
  }
  if (s.scrollTop + s.clientHeight < s.scrollHeight - 1) {
    s.scrollLeft = 0;
    s.scrollTop += s.clientHeight * 0.9;
    return false;
  }
  return true;
}"""


def open_tab(page: Any, base: str, timeout_ms: float) -> tuple[Any, float, float]:
    """Navigates to the tab; returns (frame, shell seconds, first-paint seconds)."""
    start = time.perf_counter()
    page.goto(f"{base}#saliency", wait_until="commit")
    handle = page.wait_for_selector(
        'iframe[src*="plugin_entry.html?name=saliency"]', timeout=timeout_ms
    )
    frame = handle.content_frame()
    frame.wait_for_selector(".sal-app", timeout=timeout_ms, state="attached")
    shell = time.perf_counter() - start
    frame.wait_for_function(VISIBLE_LOADED, timeout=timeout_ms, polling=20)
    return frame, shell, time.perf_counter() - start


def whole_grid(frame: Any, timeout_ms: float) -> float:
    start = time.perf_counter()
    while not frame.evaluate(SCROLL_STEP):
        time.sleep(0.05)
    frame.wait_for_function(ALL_LOADED, timeout=timeout_ms, polling=100)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--probes", type=int, default=32)
    parser.add_argument("--size", type=int, default=32, help="probe side, px (%(default)s)")
    parser.add_argument("--load-fast", default="false", choices=("true", "false"))
    parser.add_argument("--repeats", type=int, default=3, help="page loads (%(default)s)")
    parser.add_argument("--logdir", help="reuse (or write) this log dir")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    from tensorboard_browser import get_json, launch_chromium, missing_browser, tensorboard

    missing = missing_browser()
    if missing:
        print(f"cannot run: {missing}")
        return 1
    log_dir = args.logdir or tempfile.mkdtemp(prefix="bench_dashboard_")
    if not os.path.isdir(os.path.join(log_dir, "saliency")):
        t = time.perf_counter()
        write_synthetic_run(log_dir, args.epochs, args.probes, args.size)
        print(
            f"wrote {args.epochs} steps x {args.probes} probes in {time.perf_counter() - t:.0f} s"
        )
    timeout_ms = args.timeout * 1000
    command = (*LAUNCHER, "--load_fast", args.load_fast)

    def ready(base: str) -> bool:
        return bool(get_json(f"{base}data/plugins_listing")["saliency"]["enabled"])

    from playwright.sync_api import sync_playwright

    log_file = os.path.join(log_dir, "tensorboard.log")
    with tensorboard(log_dir, ready, args.timeout, command=command, log_file=log_file) as base:
        pid = server_pid(int(base.rstrip("/").rsplit(":", 1)[1]))
        rss = {"start": rss_mb(pid)}
        shells, paints = [], []
        with sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                for i in range(args.repeats):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    frame, shell, paint = open_tab(page, base, timeout_ms)
                    shells.append(shell)
                    paints.append(paint)
                    if i == 0:
                        rss["first paint"] = rss_mb(pid)
                        grid_s = whole_grid(frame, timeout_ms)
                        rss["whole grid"] = rss_mb(pid)
                        cells = frame.evaluate("document.querySelectorAll('img.sal-thumb').length")
                    page.close()
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.route("**/*", lambda route: route.continue_())  # no browser cache reuse
                frame, _, _ = open_tab(page, base, timeout_ms)
                whole_grid(frame, timeout_ms)
                rss["second pass"] = rss_mb(pid)
            finally:
                browser.close()
    load = os.getloadavg()
    print(
        f"{args.epochs} logged steps x {args.probes} probes ({args.size} px), "
        f"--load_fast {args.load_fast}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    print(f"{'':26s} {'median':>8s} {'min':>8s}")
    for name, values in (
        ("shell (TensorBoard)", shells),
        ("first paint", paints),
        ("tab's share (paint-shell)", [pt - s for pt, s in zip(paints, shells, strict=True)]),
    ):
        print(f"{name:26s} {np.median(values):7.2f}s {min(values):7.2f}s")
    print(f"first paint / shell: {np.median(paints) / np.median(shells):.2f}")
    print(f"whole grid ({cells} thumbnails, scrolled through): {grid_s:.1f} s")
    print("server RSS (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
