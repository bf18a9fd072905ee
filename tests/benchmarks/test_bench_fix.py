"""The remedy benchmark's quick mode runs end to end: it trains the shortcut model, its clean
twin, the two background-swap models and the head refit on two families, writes its four tables
between its markers (prose kept) and the plot, and a second run with the same cache trains
nothing. Numbers are parsed and compared, never matched as substrings."""

from __future__ import annotations

import numpy as np
import pytest
from bench_pages import (
    assert_prose_kept,
    load_benchmark,
    markdown_tables,
    number,
    run_into_page,
    section_of,
    written_tables,
)
from PIL import Image

FAMILIES = ("background_color", "photo")


@pytest.mark.tf_only
def test_quick_fix_benchmark(tmp_path, capsys):
    cache, plot = tmp_path / "cache", tmp_path / "fix.png"
    argv = ["--quick", "--cache", str(cache), "--plot", str(plot)]
    page, printed = run_into_page(tmp_path, capsys, "bench_fix", "bench_fix", argv)
    assert_prose_kept(page)
    truth, recovered, library, targets = written_tables(page, "bench_fix", printed)
    module = load_benchmark("bench_fix")
    remedies = module.arms(module.parse(["--quick"]))
    assert remedies == [
        "shortcut",
        "clean",
        "swap (masks, p=0.8)",
        "swap (proposed, p=0.8)",
        "refit (masks)",
    ]

    assert [(r["family"], r["remedy"]) for r in truth] == [
        (f, m) for f in FAMILIES for m in remedies
    ]
    cells = {(r["family"], r["remedy"]): r for r in truth}
    for row in truth:
        for column in ("worst-group acc", "acc where cue agrees"):
            assert 0.0 <= number(row[column]) <= 1.0
        harm = number(row["acc where cue agrees"]) - number(row["worst-group acc"])
        assert number(row["harm"]) == pytest.approx(harm, abs=0.011)
        assert row["seeds"] == "1"
    for family in FAMILIES:
        shortcut = cells[(family, "shortcut")]
        assert number(shortcut["harm"]) >= 0.5  # the shortcut is there to fix
        assert number(cells[(family, "clean")]["worst-group acc"]) > number(
            shortcut["worst-group acc"]
        )
        # the refit reads the object more: worst-group up from the shortcut's
        assert number(cells[(family, "refit (masks)")]["worst-group acc"]) > number(
            shortcut["worst-group acc"]
        )
        assert cells[(family, "swap (proposed, p=0.8)")]["masks + backgrounds (once)"] != "-"

    fixes = remedies[2:]
    assert [r["remedy"] for r in recovered] == fixes
    for row in recovered:
        assert set(row) == {"remedy", *FAMILIES}
        assert all(row[f] == "-" or row[f].endswith("%") for f in FAMILIES)

    fires = {(r["family"], r["remedy"]): r["alarm fires"] for r in library}
    assert set(fires) == set(cells)
    assert all(fires[(f, "shortcut")] == "1/1" for f in FAMILIES)  # before the fix
    assert all(fires[(f, "clean")] == "0/1" for f in FAMILIES)
    for row in library:
        assert number(row["harm_low"]) <= number(row["harm estimate"])

    assert [r["remedy"] for r in targets] == [m for m in fixes for _ in range(6)]
    assert all(r["met"] in ("yes", "no", "-") for r in targets)

    with Image.open(plot) as image:
        assert image.size[0] > 600 and image.size[1] > 400
        assert np.asarray(image.convert("L")).std() > 10  # something was drawn

    # A second run with the same cache trains nothing and reports the same tables.
    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    module.small_cnn = no_training
    second = tmp_path / "second.md"
    assert module.main([*argv, "--markdown", str(second)]) == 0
    assert markdown_tables(section_of(second.read_text(), "bench_fix")) == [
        truth,
        recovered,
        library,
        targets,
    ]
