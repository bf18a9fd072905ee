"""The whole-fit benchmark's quick mode runs end to end, and what it measures is true: the
compiled functions are traced before training and never again, and the training function is
never retraced because of the callback."""

from __future__ import annotations

import pathlib

import pytest
from bench_pages import assert_prose_kept, run_into_page, written_tables

BENCHMARKS = pathlib.Path(__file__).parents[2] / "benchmarks"


def _rows(out: str, first: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith(f"| {first}")
    ]


def test_quick_fit_benchmark(capsys, tmp_path, monkeypatch):
    # The records the summary is made from, kept to recompute its cells here.
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _fit_report

    seen: list = []
    summary_table = _fit_report.summary_table

    def keep(records, whole_fit):
        seen.extend(records)
        return summary_table(records, whole_fit)

    monkeypatch.setattr(_fit_report, "summary_table", keep)
    # Written into a page: the prose kept, the stale section replaced by the printed tables.
    page, out = run_into_page(tmp_path, capsys, "bench_fit", "bench_fit", ["--quick"])
    assert_prose_kept(page)
    assert written_tables(page, "bench_fit", out)
    summary = {row[0]: row for row in _rows(out, "") if row[0] in ("none", "defaults")}
    assert set(summary) == {"none", "defaults"}
    assert summary["none"][2] == "+0.0%"  # the reference against itself
    assert summary["defaults"][2].endswith("%")
    # Each epoch's wait for its first batch was measured (2 epochs, 1 round, per mode), and
    # the cell counts those over 0.5 s and shows the longest, in seconds.
    assert sorted(r.mode for r in seen) == ["defaults", "none"]
    for r in seen:
        assert len(r.epoch_first_batch) == 2
        for wait, wall in zip(r.epoch_first_batch, r.epoch_wall, strict=True):
            assert 0 <= wait <= wall  # the wait is part of its epoch (ms)
        waited = sum(w > 500.0 for w in r.epoch_first_batch)
        assert summary[r.mode][-1] == f"{waited} of 2 ({max(r.epoch_first_batch) / 1e3:.2f})"
    assert len(_rows(out, "defaults, 0")) == 1  # the fixed cost of the one round
    # Per-epoch profile rows: epoch, ..., explainer traces, train traces, GC, faults, waits.
    profiles = out.split("per epoch (CPU ms")[1:]
    assert len(profiles) == 1
    rows = [r for r in _rows(profiles[0], "") if r[0].isdigit()]
    assert len(rows) == 2  # two epochs
    explainer, train = [int(r[-5]) for r in rows], [int(r[-4]) for r in rows]
    assert explainer[0] > 0 and explainer == [explainer[0]] * len(rows)  # no retrace
    assert train == [1] * len(rows)  # Keras's train function traced once, not again
    # Every part of the epoch end was seen in both epochs (the worker's under its step).
    header = next(line for line in profiles[0].splitlines() if line.startswith("| epoch"))
    assert "gradients (training thread)" in header and "PNG encode (worker)" in header
    assert all(r[header.strip("|").split("|").index(" PNG encode (worker) ")] for r in rows)
    # (TensorFlow's retracing warning counts traces over every explainer of the process, so
    # after other tests' fits it may fire: only its count's presence is checked.)
    assert "retracing warnings from TensorFlow" in out
    assert "load average (1 min) at start" in out


def test_hook_costs(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_fit

    assert bench_fit.main(["--hooks", "2"]) == 0
    out = capsys.readouterr().out
    modes = [row[1] for row in _rows(out, "") if row[0].isdigit()]
    assert modes == ["defaults", "defaults-cold"]
    assert "- trace the sweep:" in out and "- rendering warm-up:" in out


def test_attribution_arithmetic_on_a_made_up_fit(monkeypatch):
    """The training-only CPU and the worker's interference, on a record whose answer is known:
    3 epochs of 10 batches of 10 ms; in epochs 1 and 2, the worker's job overlaps 2 batches
    that took 40 ms each (60 ms added per epoch)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _fit_report as report

    r = report.FitRecord("defaults")
    t = 0.0
    for epoch in range(3):
        for b in range(10):
            slow = epoch > 0 and b < 2
            r.batches.append((epoch, t, t + (0.040 if slow else 0.010)))
            if slow and b == 0:
                r.worker.append((epoch - 1, t + 0.001, t + 0.079, 30.0))
            t += 0.040 if slow else 0.010
    r.epoch_wall = [100.0, 160.0, 160.0]
    r.epoch_cpu = [500.0, 700.0, 650.0]
    r.epoch_worker_cpu = [0.0, 30.0, 40.0]
    r.hooks["on_epoch_end"] = [
        report.Span(50, 200),
        report.Span(50, 210),
        report.Span(50, 190),
    ]
    assert report.train_only_cpu(r) == [300.0, 460.0, 420.0]
    (row,) = [line for line in report.interference_table([r]) if line.startswith("| defaults")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["10.0", "2.0", "40.0", "60"]


def test_epochs_that_waited_for_their_first_batch_are_counted(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _fit_report as report

    a, b = report.FitRecord("none"), report.FitRecord("none")
    a.epoch_first_batch = [12.0, 1900.0]  # the second epoch waited for TensorFlow
    b.epoch_first_batch = [499.0]  # just under the limit
    assert report.waited_epochs([a, b]) == "1 of 3 (1.90)"
    assert report.waited_epochs([report.FitRecord("none")]) == "-"


def test_the_no_autotune_dataset_is_the_same_data_reshuffled_each_epoch(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_fit
    import numpy as np

    from saliency_callback import make_shortcut_data

    train = make_shortcut_data(80, image_size=16, num_classes=3, seed=0)
    assert set(bench_fit.fit_inputs(train, "keras")) == {"x", "y", "batch_size"}
    inputs = bench_fit.fit_inputs(train, "no-autotune")
    assert set(inputs) == {"x", "shuffle"}
    dataset = inputs["x"]
    assert dataset.options().autotune.enabled is False
    epochs = []
    for _ in range(2):
        batches = [(x.numpy(), y.numpy()) for x, y in dataset]
        assert [len(y) for _, y in batches] == [32, 32, 16]
        images = np.concatenate([x for x, _ in batches])
        labels = np.concatenate([y for _, y in batches])
        # Every image once, with its own label.
        order = [int(np.flatnonzero((train.images == im).all(axis=(1, 2, 3)))[0]) for im in images]
        assert sorted(order) == list(range(80))
        np.testing.assert_array_equal(labels, train.labels[order])
        epochs.append(order)
    assert epochs[0] != epochs[1]  # reshuffled each epoch


def test_unknown_mode_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_fit

    with pytest.raises(SystemExit):
        bench_fit.main(["--modes", "none,fast"])
    assert "--modes: expected some of" in capsys.readouterr().err


def test_epoch_start_benchmark_quick(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_epoch_start

    clocks: list = []

    class KeptClock(bench_epoch_start.FirstBatchClock):
        def __init__(self) -> None:
            super().__init__()
            clocks.append(self)

    monkeypatch.setattr(bench_epoch_start, "FirstBatchClock", KeptClock)
    for extra in ([], ["--no-autotune"]):
        assert bench_epoch_start.main(["--quick", *extra]) == 0
        out = capsys.readouterr().out
        rows = [r for r in _rows(out, "") if r[0].isdigit()]
        measured = clocks[-1].rows
        assert [r[0] for r in rows] == ["0", "1"] and len(measured) == 2
        for (_, wall, wait, cpu), (wall_s, wait_s, cpu_s) in zip(rows, measured, strict=True):
            assert [wall, wait, cpu] == [f"{wall_s:.2f}", f"{wait_s:.2f}", f"{cpu_s:.2f}"]
            assert 0 <= wait_s <= wall_s and cpu_s >= 0  # the wait is part of its epoch
        waited = sum(wait_s > 0.5 for _, wait_s, _ in measured)
        assert f"\n{waited} of 2 epochs waited more than 0.5 s" in out
        assert ("(no-autotune)" in out) == bool(extra)
