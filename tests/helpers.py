"""Helpers shared by the test modules that run the `saliency-callback` console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ERROR_PREFIX = "saliency-callback: error: "


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(ERROR_PREFIX)]


def console_script() -> list[str]:
    """The installed `saliency-callback` script (next to this Python, else on PATH)."""
    name = "saliency-callback.exe" if os.name == "nt" else "saliency-callback"
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which("saliency-callback")
    assert found, "the console script is missing: run `pip install -e .`"
    return [found]


def run_parallel(commands: dict[str, list[str]], cwd: Path) -> dict[str, Result]:
    """Runs the commands side by side (each imports TensorFlow) and collects their results."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    procs = {
        key: subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for key, cmd in commands.items()
    }
    results = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[key] = Result(proc.returncode, out, err)
    return results


def assert_one_line_error(result: Result, code: int, *words: str) -> None:
    """Exit status `code`, no traceback, one error line (the last), holding every word."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == result.error_lines[0]
    for word in words:
        assert word in result.error_lines[0], result.error_lines[0]
