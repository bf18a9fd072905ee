"""A real TensorBoard server and headless Chromium, for looking at what the callback logged.

Shared by `scripts/screenshot_tensorboard.py` (the README's screenshot) and
`tests/tensorboard_plugin/test_tensorboard_browser.py` (the end-to-end test;
`tests/conftest.py` puts this folder on `sys.path`). Chromium is Debian's `/usr/bin/chromium`,
driven by Playwright, which never downloads a browser of its own.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
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
# How the server is started: this interpreter's TensorBoard.
TENSORBOARD = (sys.executable, "-m", "tensorboard.main")
# Known reasons for TensorBoard to die at start: what its output says, and the fix.
KNOWN_FAILURES = (
    (
        "No module named 'pkg_resources'",
        "TensorBoard 2.16-2.20 imports `pkg_resources`, which setuptools >= 82 no longer ships. "
        'Fix: pip install -U "tensorboard>=2.21" (with tensorflow >= 2.21), or '
        'pip install "setuptools<82" (with tensorflow 2.16-2.20, which pins its tensorboard).',
    ),
)


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


def known_failure(output: str) -> str | None:
    """The fix for a known start-up failure whose message is in `output`, else None."""
    for symptom, fix in KNOWN_FAILURES:
        if symptom in output:
            return fix
    return None


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
    command: Sequence[str] = TENSORBOARD,
) -> Iterator[str]:
    """Serves `log_dir` on a free loopback port; yields the base URL once `ready(base)` holds.

    The server (`command` and TensorBoard's arguments) writes its output to `log_file`
    (default: a new temporary file). Raises `RuntimeError` as soon as the server exits (with
    the fix, for a known start-up failure such as the missing `pkg_resources`), and
    `TimeoutError` if it is not ready within `timeout` seconds; both quote the end of its
    output. The server is always stopped on exit.
    """
    port = free_port()
    cmd = [
        *command,
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
                output = tail(log_file)
                fix = known_failure(output)
                raise RuntimeError(
                    f"tensorboard exited with {proc.returncode} before serving"
                    + (f": {fix}" if fix else "")
                    + f"\nIts output ({log_file}) ends with:\n{output}"
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
