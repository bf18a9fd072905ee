"""The benchmarks write the tables of the docs themselves (`--markdown PAGE`): each mode replaces
its own section of the page, between its markers, and leaves the prose around it alone; the
tables parse as Markdown, with the docs' columns, and hold the numbers the run printed.

Each benchmark runs in its smallest mode (a smoke run: the numbers mean nothing, their
consistency does). The TensorFlow benchmarks run in the suite's TensorFlow pass, the JAX one in
its JAX pass (`scripts/test.sh` lists this module among the backend tests)."""

from __future__ import annotations

import os
import sys

import keras
import pytest
from bench_pages import (
    BENCHMARKS,
    assert_prose_kept,
    load_benchmark,
    markdown_tables,
    number,
    page_with_section,
    run_into_page,
    section_of,
    written_tables,
)


def assert_ratio(cell: str, numerator: str, denominator: str) -> None:
    """A ratio column is the quotient of the two durations beside it (up to their rounding)."""
    assert number(cell) == pytest.approx(
        number(numerator) / number(denominator), rel=0.02, abs=0.01
    )


# -- the writer -------------------------------------------------------------------------------


def test_write_section_replaces_only_its_section(tmp_path):
    sys.path.insert(0, str(BENCHMARKS)) if str(BENCHMARKS) not in sys.path else None
    from _markdown import table, write_section

    page = tmp_path / "page.md"
    page_with_section(page, "bench_x --mode")
    other = "<!-- bench_x: begin -->\nother section\n<!-- bench_x: end -->\n"
    page.write_text(page.read_text() + other)
    text = table(["a", "b"], [[1, "2 ms"]])
    for run in range(2):  # a second run replaces the section, never appends it again
        write_section(page, "bench_x --mode", text, f"python benchmarks/x.py --run {run}", 1.5)
        written = page.read_text()
        body = section_of(written, "bench_x --mode")
        assert body.splitlines()[1] == (
            f"<!-- written by `python benchmarks/x.py --run {run}`; do not edit by hand -->"
        )
        assert markdown_tables(body) == [[{"a": "1", "b": "2 ms"}]]
        assert "load average 1.5 at the start" in body
        assert written.startswith("# Title\n\nprose before\n\n")
        assert section_of(written, "bench_x") == "\nother section\n"  # the other section
    assert os.listdir(tmp_path) == ["page.md"]  # no temporary file left

    # A page without the markers gets them at its end; a missing page is created.
    bare = tmp_path / "bare.md"
    bare.write_text("prose\n")
    write_section(bare, "s", text, "cmd", 0.0)
    write_section(tmp_path / "new.md", "s", text, "cmd", 0.0)
    assert bare.read_text().startswith("prose\n\n<!-- s: begin -->")
    assert section_of(bare.read_text(), "s") == section_of((tmp_path / "new.md").read_text(), "s")

    broken = tmp_path / "broken.md"
    broken.write_text("<!-- s: begin -->\nno end\n")
    with pytest.raises(ValueError, match="no end"):
        write_section(broken, "s", text, "cmd", 0.0)
    assert broken.read_text() == "<!-- s: begin -->\nno end\n"  # left as it was
    with pytest.raises(ValueError, match="2 cells for 1 columns"):
        table(["a"], [[1, 2]])


# -- the benchmarks ---------------------------------------------------------------------------


@pytest.mark.tf_only
def test_bench_engine_writes_its_table(tmp_path, capsys):
    argv = ["--quick", "--workload", "cnn"]
    written, printed = run_into_page(tmp_path, capsys, "bench_engine", "bench_engine", argv)
    assert_prose_kept(written)
    (rows,) = written_tables(written, "bench_engine", printed)
    assert "|".join(rows[0]) == (
        "workload (32 probes)|method|engine batch_size|reference code|engine|reference|ratio|"
        "ratio of fastest runs|CPU ratio|target|retrace"
    )
    methods = [r["method"] for r in rows]
    assert methods == ["vanilla", "SmoothGrad-20", "SmoothGrad-20", "IG-32", "Grad-CAM"]
    assert {r["workload (32 probes)"] for r in rows} == {"small CNN, 64x64"}
    for r in rows:
        assert_ratio(r["ratio"], r["engine"], r["reference"])
        assert r["retrace"] == "no"
    assert [r["target"] for r in rows] == ["≤ 1.10", "≤ 1.10", "≤ 1.10", "", ""]


@pytest.mark.tf_only
def test_bench_callback_writes_epoch_end_and_background_tables(tmp_path, capsys):
    argv = ["--quick", "--workload", "cnn"]
    written, printed = run_into_page(tmp_path, capsys, "bench_callback", "bench_callback", argv)
    assert_prose_kept(written.split("<!-- bench_callback --background")[0] + "\n\nprose after\n")
    main, breakdown = written_tables(written, "bench_callback", printed)
    assert [(r["method"], r["target"]) for r in main] == [("vanilla", "≤ 1.30"), ("Grad-CAM", "")]
    for r in main:
        assert_ratio(r["ratio"], r["callback"], r["reference"])
        assert r["retrace"] == "no"
        assert number(r["pixels per logged epoch"]) > 0.1  # millions: 32 tiles of 64x64 at least
    parts = {r["part of the epoch end"]: r for r in breakdown}
    assert {"engine", "PNG encoding", "total (instrumented runs)"} <= set(parts)
    assert list(breakdown[0]) == ["part of the epoch end", "cnn, vanilla", "cnn, gradcam"]
    # The section of the background tests was measured in the same run: added at the end.
    (background,) = written_tables(written, "bench_callback --background", printed)
    assert written.index("prose after") < written.index("<!-- bench_callback --background")
    (row,) = background
    assert row["counterfactual images"].startswith("4 x 32")
    assert_ratio(row["ratio"], row["forward pass"], row["vanilla gradient (32)"])
    assert number(row["per variant"]) == pytest.approx(number(row["ratio"]) / 4, abs=0.01)


@pytest.mark.tf_only
def test_bench_callback_long_run_modes_write_their_tables(tmp_path, capsys):
    bench = load_benchmark("bench_callback")
    page = tmp_path / "performance.md"
    modes = {
        "--blocking": ["--workload", "cnn", "--probes", "random", "--repeats", "1"],
        "--fit-modes": ["--fit-images", "64", "--repeats", "1"],
        "--fit": ["--fit-images", "64", "--fit-epochs", "1"],
    }
    page_with_section(page, "bench_callback --blocking")
    tables = {}
    for mode, args in modes.items():
        assert bench.main([mode, *args, "--markdown", str(page)]) == 0
        name = f"bench_callback {mode}"
        (tables[mode],) = written_tables(page.read_text(), name, capsys.readouterr().out)
    assert page.read_text().startswith("# Title\n\nprose before\n\n")

    (blocking,) = tables["--blocking"]
    assert blocking["workload (32 probes)"] == "small CNN, 64x64"
    for mode in ("worker (default)", "inline", "inline, no timeline (before #12)"):
        assert_ratio(blocking[mode].split("(")[1], blocking[mode], blocking["bare gradient"])

    modes_rows = {r["mode (64 images per epoch)"]: r for r in tables["--fit-modes"]}
    assert set(modes_rows) == {"worker", "inline", "off"}
    assert modes_rows["off"]["vs off"] == "+0.0%"
    for r in modes_rows.values():
        runs = [float(t) for t in r["runs (s)"].split()]
        assert len(runs) == 1 and number(r["epoch wall time (median)"]) == runs[0]

    fit = {r["measure"]: r["value"] for r in tables["--fit"]}
    assert fit["training images per epoch"] == "64"
    target = load_benchmark("_fit_runs").FIT_TARGET_PCT
    assert fit[f"target < {target:.0f}%"][:4] in ("PASS", "FAIL")


@pytest.mark.tf_only
def test_bench_callback_growth_writes_its_table(tmp_path, capsys, monkeypatch):
    load_benchmark("bench_callback")
    long_runs = sys.modules["_long_runs"]
    # Each count runs in this process rather than a fresh one (only the peak RSS differs).
    monkeypatch.setattr(long_runs, "growth_subprocess", long_runs.growth_one)
    name, argv = "bench_callback --growth", ["--growth", "--growth-counts", "4", "--repeats", "1"]
    written, printed = run_into_page(tmp_path, capsys, "bench_callback", name, argv)
    assert_prose_kept(written)
    ((row,),) = written_tables(written, name, printed)
    assert row["probes"] == "4"
    assert_ratio(row["ratio"], row["epoch end blocks (worker)"], row["bare gradient"])
    assert number(row["per probe"]) == pytest.approx(number(row["whole step inline"]) / 4, rel=0.05)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="runs in the suite's JAX pass")
def test_bench_engine_jax_writes_its_table(tmp_path, capsys):
    """The vanilla rows only, to keep it short (SmoothGrad's row is written by the same code)."""
    name, argv = "bench_engine_jax", ["--quick", "--workload", "cnn", "--methods", "vanilla"]
    written, printed = run_into_page(tmp_path, capsys, name, name, argv)
    assert_prose_kept(written)
    ((row,),) = written_tables(written, name, printed)
    assert (row["workload (32 probes)"], row["method"]) == ("small CNN, 64x64", "vanilla")
    assert_ratio(row["ratio"], row["engine"], row["bare JAX reference"])
    assert row["retrace"] == "no" and row["target"] == "≤ 1.10"
