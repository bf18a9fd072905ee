"""The detection benchmark's quick mode runs end to end and separates the two demo models."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

BENCH = pathlib.Path(__file__).parents[1] / "benchmarks" / "bench_detection.py"


def test_quick_detection_benchmark(capsys):
    spec = importlib.util.spec_from_file_location("bench_detection", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_detection"] = module
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in out.splitlines()
        if line.startswith("| ") and "·" in line
    }
    assert set(rows) == {s.name for s in module.signals()}
    # The shortcut model follows the background on swaps, the clean one does not: the
    # background gap ranks the two runs correctly (AUC 1 with one run each).
    assert rows["background/gap"].startswith("1.00")
    shortcut_line = next(line for line in out.splitlines() if "shortcut acc agree" in line)
    assert "disagree 0.0" in shortcut_line  # it really relies on the cue
    # The AUC helper itself, on known cases.
    assert module.auc([2, 3], [0, 1]) == 1.0
    assert module.auc([0], [1]) == 0.0
    assert module.auc([1, 1], [1, 1]) == 0.5
