"""The proposals benchmark's quick mode runs end to end and ranks GrabCut above the centre box."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

BENCH = pathlib.Path(__file__).parents[1] / "benchmarks" / "bench_proposals.py"


def test_quick_proposals_benchmark(capsys, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_proposals", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_proposals"] = module
    spec.loader.exec_module(module)
    out_file = tmp_path / "table.md"
    assert module.main(["--quick", "--markdown", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert out_file.read_text() == out
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in out.splitlines()
        if line.startswith("| ") and not line.startswith("| family") and "ms" not in line
    }
    grabcut, centre, mask = rows["background_color"]
    assert float(grabcut.split("·")[0]) >= 0.8 > float(centre.split("·")[0])
    assert centre.endswith("fb 100%") and float(mask) >= 0.8
    assert rows["no object (grating)"][0] == "fallback 100%"
    assert "--quick" in out and "load average" in out
