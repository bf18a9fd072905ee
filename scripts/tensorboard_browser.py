"""A real TensorBoard server and headless Chromium, for looking at what the callback logged.

Shared by `scripts/screenshot_tensorboard.py` (the README's screenshot) and
`tests/test_tensorboard_browser.py` (the end-to-end test; `tests/conftest.py` puts this
folder on `sys.path`). Chromium is Debian's `/usr/bin/chromium`, driven by Playwright, which
never downloads a browser of its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What `SaliencyCallback` writes with its default `run_name`: the run and its two image tags.
RUN, OVERVIEW, PROBES = "saliency", "saliency/overview", "saliency/probes"
HTTP_TIMEOUT_S = 5.0


# --- browser --------------------------------------------------------------------------------


def missing_browser(chromium: str = CHROMIUM) -> str | None:
    """Why headless Chromium cannot be driven here (binary or Playwright missing), else None."""
    if not os.path.exists(chromium):
        return f"{chromium} not found (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


def launch_chromium(playwright: Any, chromium: str = CHROMIUM, **kwargs: Any) -> Any:
    """`playwright.chromium.launch` of the system Chromium, headless, with `CHROMIUM_ARGS`."""
    return playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, **kwargs)


# --- HTTP -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        return response.read()


def get_json(url: str) -> Any:
    return json.loads(get(url))


def images_url(base: str, tag: str, sample: int = 0) -> str:
    """The images plugin's list of one sample's logged steps (`step`, `query`, ...)."""
    query = urllib.parse.urlencode({"run": RUN, "tag": tag, "sample": sample})
    return f"{base}data/plugin/images/images?{query}"


def served_steps(base: str, tag: str) -> list[int]:
    return [e["step"] for e in get_json(images_url(base, tag))]


# --- TensorBoard server ---------------------------------------------------------------------


def tail(path: str, n: int = 3000) -> str:
    return Path(path).read_text(errors="replace")[-n:] if os.path.exists(path) else ""


def stop(proc: subprocess.Popen) -> None:
    """Ends the server and its data-server child (its own process group), never hanging."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass  # already gone


@contextmanager
def tensorboard(
    log_dir: str,
    ready: Callable[[str], bool],
    timeout: float,
    *,
    log_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Serves `log_dir` on a free loopback port; yields the base URL once `ready(base)` holds.

    The server's output goes to `log_file` (default: a new temporary file). Raises
    `RuntimeError` if the server exits, `TimeoutError` if it is not ready within `timeout`
    seconds (both with the end of its output). The server is always stopped on exit.
    """
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        log_dir,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--samples_per_plugin",
        "images=100",
        "--reload_interval",
        "1",
    ]
    print("$", shlex.join(cmd), flush=True)
    if log_file is None:
        fd, log_file = tempfile.mkstemp(prefix="tensorboard_", suffix=".log")
        os.close(fd)
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    print(f"  (its output goes to {log_file})", flush=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"tensorboard exited with {proc.returncode}, see {log_file}:\n{tail(log_file)}"
                )
            try:
                if ready(base):
                    break
            except (OSError, ValueError, KeyError, TypeError):
                pass  # not listening yet, or the run is not loaded yet
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"tensorboard not ready after {timeout} s, see {log_file}:\n{tail(log_file)}"
                )
            time.sleep(0.25)
        yield base
    finally:
        stop(proc)
