"""A real `saliency-callback annotate` server and headless Chromium, for driving its page.

Shared by `scripts/screenshot_annotate.py` (the docs' screenshot),
`benchmarks/bench_annotate_page.py` (time to a ready page) and the tests
(`tests/conftest.py` puts this folder on `sys.path`). Chromium is Debian's `/usr/bin/chromium`
driven by Playwright (see `tensorboard_browser.py`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

START_TIMEOUT_S = 60.0
READY_TIMEOUT_MS = 20_000


def write_images(
    directory: Path, n: int, size: tuple[int, int], seed: int = 0, objects: bool = True
) -> list[Path]:
    """Writes `n` PNGs of the synthetic shapes data (`saliency_callback.data.datasets`), square
    `size[0]` images resized to `size` when it is not square. `objects=False` writes
    whole-image textures instead (`saliency_callback.data.textures`), where the automatic
    proposals find nothing, so every mask starts empty."""
    from PIL import Image

    from saliency_callback.data.datasets import make_shortcut_data
    from saliency_callback.data.textures import make_texture_data

    directory.mkdir(parents=True, exist_ok=True)
    if objects:
        data = make_shortcut_data(n, image_size=max(size), seed=seed)
    else:
        data = make_texture_data(n, image_size=max(size), seed=seed)
    paths = []
    for i, image in enumerate(data.images):
        pixels = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
        img = Image.fromarray(pixels)
        if size[0] != size[1]:
            img = img.resize((size[1], size[0]))
        path = directory / f"{data.class_names[data.labels[i]]}_{i:02d}.png"
        img.save(path)
        paths.append(path)
    return paths


@dataclass
class Annotate:
    """A running `annotate` command: its URL, process and what it printed."""

    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    @property
    def token(self) -> str:
        return self.url.split("token=", 1)[1]

    def stop(self, sig: int | None = signal.SIGINT, timeout: float = 20.0) -> tuple[int, str, str]:
        """Stops the command (Ctrl-C by default; `None`: waits for it to exit by itself);
        returns its status, stdout and stderr."""
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, "".join(self.lines) + out, err


def ctrl_c_by_default() -> None:
    """In the child before it runs Python: SIGINT's default action, so Python installs its
    KeyboardInterrupt handler and `stop()`'s Ctrl-C reaches the command, even when this
    process inherited SIGINT ignored (a job started with `&` in a non-interactive shell)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def command(args: Sequence[str]) -> list[str]:
    """`python -m saliency_callback annotate ARGS --no-browser` with this interpreter."""
    return [sys.executable, "-m", "saliency_callback", "annotate", *args, "--no-browser"]


def environment() -> dict[str, str]:
    """This environment, with this checkout's package first on the path (whatever the cwd)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextmanager
def annotate_server(args: Sequence[str], cwd: str | None = None) -> Iterator[Annotate]:
    """Runs `annotate ARGS --no-browser` until it prints its URL; stops it on exit.

    Raises:
        RuntimeError: If it exits (or prints no URL within `START_TIMEOUT_S`), with its output.
    """
    process = subprocess.Popen(
        command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=environment(),
        preexec_fn=ctrl_c_by_default,
    )
    lines: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    url = None
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.match(r"open (http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        process.kill()
        out, err = process.communicate()
        raise RuntimeError(f"annotate printed no URL: {''.join(lines) + out}{err}")
    running = Annotate(url, process, lines)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def open_page(browser: Any, url: str, viewport: tuple[int, int] = (1280, 760)) -> Any:
    """A new page on `url`, once it is ready; `page.requests` lists every URL it requested
    and `page.errors` its script errors."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.requests = []
    page.errors = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("html[data-ready]", timeout=READY_TIMEOUT_MS)
    return page


def image_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """The screen point of image coordinates `(x, y)` in the editor."""
    box = page.locator("#wrap").bounding_box()
    scale = float(page.locator("#wrap").get_attribute("data-scale"))
    return box["x"] + x * scale, box["y"] + y * scale


def drag(page: Any, points: Sequence[tuple[float, float]], steps: int = 6) -> None:
    """Presses at the first image point, moves through the others, releases."""
    page.mouse.move(*image_point(page, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*image_point(page, *p), steps=steps)
    page.mouse.up()
