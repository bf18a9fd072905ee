"""The detection benchmark's quick mode runs end to end: it trains a shortcut and a clean model,
writes every table (none overwriting another) and the plot, and the default alarm fires on the
shortcut model only. Numbers are parsed and compared, never matched as substrings."""

from __future__ import annotations

import re

import numpy as np
import pytest
from bench_pages import load_benchmark
from PIL import Image


def load():
    return load_benchmark("bench_detection")


def parse_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """`### title` followed by a Markdown table -> title: rows as {column: cell}."""
    tables: dict[str, list[dict[str, str]]] = {}
    for block in text.split("### ")[1:]:
        lines = block.strip().splitlines()
        title = lines[0]
        assert title not in tables, f"two tables titled {title!r}"
        rows = [line.strip("|").split("|") for line in lines[1:] if line.startswith("|")]
        header = [c.strip() for c in rows[0]]
        tables[title] = [dict(zip(header, (c.strip() for c in r), strict=True)) for r in rows[2:]]
    return tables


CELL = re.compile(r"^(-|\d+)%? \((\d+)\) · (-|\d+)%? \((\d+)\)$")


def rates(cell: str) -> tuple[float, int, float, int]:
    """'100% (1) · 0% (1)' -> (1.0, 1, 0.0, 1); '-' -> NaN."""
    match = CELL.match(cell)
    assert match, cell
    hit, n_hit, false, n_false = match.groups()
    as_rate = lambda x: np.nan if x == "-" else int(x) / 100  # noqa: E731
    return as_rate(hit), int(n_hit), as_rate(false), int(n_false)


def test_quick_detection_benchmark(tmp_path, capsys):
    module = load()
    markdown, plot = tmp_path / "tables.md", tmp_path / "plot.png"
    # A page with the markers: the benchmark writes between them and leaves the rest alone.
    markdown.write_text(f"intro prose\n{module.BEGIN}\nstale table\n{module.END}\noutro prose\n")
    argv = ["--quick", "--cache", str(tmp_path / "cache"), "--markdown", str(markdown)]
    assert module.main([*argv, "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    text = markdown.read_text()
    assert text.startswith("intro prose\n") and text.endswith("outro prose\n")
    assert "stale table" not in text and text.count(module.BEGIN) == 1
    tables = parse_tables(text)
    assert tables == parse_tables(printed[printed.index("### ") :])  # the same tables printed
    assert len(tables) == 9  # truth, the targets, rules, mask kinds, alternatives,
    # AUC, per-epoch harm, probe count, estimate

    truth = next(rows for title, rows in tables.items() if title.startswith("Ground truth"))
    harm = {float(r["cue share"]): float(r["harm (mean)"]) for r in truth}
    assert set(harm) == {0.33, 0.95}
    assert [r["family"] for r in truth] == ["background_color"] * 2 + ["photo"] * 2
    shortcut = {r["family"]: float(r["harm (mean)"]) for r in truth if r["cue share"] == "0.95"}
    assert min(shortcut.values()) >= 0.9  # both shortcut models really rely on the cue
    clean = {r["family"]: float(r["harm (mean)"]) for r in truth if r["cue share"] == "0.33"}
    assert clean["background_color"] < 0.05  # the flat-colour clean one does not

    targets = next(rows for title, rows in tables.items() if title.startswith("The issue's"))
    assert {r["rule"] for r in targets} == {
        module.DEFAULT_RULE,
        module.STREAK_RULE,
        module.READING_RULE,
    }
    assert {r["masks"] for r in targets} >= {"mask", "box", "mask, resample fill", "proposed"}
    for row in targets:  # each column is one family: models counted there, never elsewhere
        n_hits = [rates(row[f])[1] for f in ("background_color", "photo")]
        assert rates(row["all"])[1] == sum(n_hits)
    default_mask = next(
        r for r in targets if (r["masks"], r["rule"]) == ("mask", module.DEFAULT_RULE)
    )
    assert rates(default_mask["photo"])[:2] == (1.0, 1)  # the photographic shortcut, in time

    rules = next(rows for title, rows in tables.items() if title.startswith("Decision rules"))
    default = next(r for r in rules if r["rule"] == module.DEFAULT_RULE)
    hit, n_hit, false, n_false = rates(default["all"])
    assert (hit, n_hit) == (1.0, 2) and n_false >= 1 and false == 0.0  # shortcut models only
    kinds = next(rows for title, rows in tables.items() if title.startswith("Mask kinds"))
    assert {r["masks"] for r in kinds} >= {"mask", "box", "loose box", "shifted box"}
    assert rates(next(r for r in kinds if r["masks"] == "box")["all"])[0] == 1.0
    two = next(rows for title, rows in tables.items() if title.startswith("Alternatives"))
    assert [(r["masks"], r["rule"]) for r in two] == [
        (k["masks"], rule) for k in kinds for rule in ("default", "two-sided", "right/wrong terms")
    ]
    for kind in kinds:  # the default rows repeat the mask kinds' table; the two-sided rule is
        # the default and one more condition, so it fires on no more models
        default, two_sided, _ = (r for r in two if r["masks"] == kind["masks"])
        assert {k: v for k, v in default.items() if k not in ("rule",)} == kind
        for family in kind:
            if family != "masks":
                one, both = rates(default[family]), rates(two_sided[family])
                assert not both[0] > one[0] and not both[2] > one[2], (kind, family)

    aucs = next(rows for title, rows in tables.items() if title.startswith("AUC by epoch"))
    assert {(r["masks"], r["signal"]) for r in aucs} == {
        (k["masks"], s) for k in kinds for s in ("harm_low", "reliance")
    }
    exact = next(r for r in aucs if (r["masks"], r["signal"]) == ("mask", "harm_low"))
    assert exact["all"] == "1.00"  # the shortcut model's sets all score above the clean one's

    estimate = next(rows for title, rows in tables.items() if title.startswith("What the"))
    top = max(estimate, key=lambda r: float(r["mean harm"]))
    assert float(top["estimate `harm`"]) > 0.5
    low, high = (float(x) for x in top["bounds `harm_low .. harm_high`"].split(" .. "))
    assert low <= float(top["estimate `harm`"]) <= high

    with Image.open(plot) as image:
        assert image.size[0] > 600 and image.size[1] > 300
        assert np.asarray(image.convert("L")).std() > 10  # something was drawn

    # A second run with the same cache trains nothing and reports the same tables.
    assert module.main(argv) == 0
    assert parse_tables(markdown.read_text()) == tables


def test_auc_and_early_score():
    module = load()
    assert module.auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert module.auc([0.1], [0.9]) == 0.0
    assert module.auc([0.5, 0.9], [0.5]) == 0.75  # a tie counts half
    assert np.isnan(module.auc([0.5], []))
    series = [{"harm_low": float("nan")}, {"harm_low": 0.2}, {"harm_low": 0.1}, {"harm_low": 0.9}]
    assert module.early_score(series, "harm_low") == 0.2  # epochs 1-3 only, NaN skipped
    assert module.early_score(series[:1], "harm_low") == float("-inf")


def test_rules_fire_only_when_every_condition_holds():
    module = load()
    partial = {"harm_low": 0.2, "reliance": -0.31}  # a partial shortcut that follows the object
    assert module.fires(partial, module.DEFAULT_RULE)
    assert not module.fires(partial, module.TWO_SIDED_RULE)
    assert module.fires({"harm_low": 0.2, "reliance": 0.4}, module.TWO_SIDED_RULE)
    assert not module.fires({"harm_low": float("nan"), "reliance": 1.0}, module.TWO_SIDED_RULE)
    assert not module.fires({"reliance": 1.0}, module.DEFAULT_RULE)  # missing never fires
    assert not module.fires({"harm_low": 0.05}, module.DEFAULT_RULE)  # above, not equal


def test_right_wrong_terms_and_their_paired_binary_bound():
    module = load()
    from scipy import stats

    # Bonett and Price's adjusted Wald bound, by hand: 6 probes right only where the background
    # agrees, 1 right only where it disagrees, 3 alike (0), 2 left out (NaN).
    d = np.array([1, 1, 1, 1, 1, 1, -1, 0, 0, 0, np.nan, np.nan])
    up, down = 7 / 12, 2 / 12
    se = np.sqrt((up + down - (up - down) ** 2) / 12)
    assert module.bonett_price_low(d) == pytest.approx(up - down - stats.norm.ppf(0.95) * se)
    # Where a t-interval collapses (every term 1), the bound stays below the estimate.
    assert 0 < module.bonett_price_low(np.ones(4)) < 1
    assert np.isnan(module.bonett_price_low(np.array([np.nan])))

    # The terms: three probes, classes 0, 1, 2, each object on a same-class and an other-class
    # background. The default sorts the two by the partners' labels; the former estimate
    # (`reading_harm`) by what each background alone says (`only_bg`).
    from saliency_callback.shortcuts import background as bg

    test = bg.BackgroundTest(
        valid=np.ones(4, bool),
        partners={"mixed_same": np.array([1, 0, 3, 2]), "mixed_rand": np.array([2, 3, 0, 1])},
        images={},
        classes=np.array([0, 0, 1, 1]),
    )
    eye = np.eye(2)
    variants = {
        # Each probe's same-class partner's background alone reads as the other class, and its
        # other-class partner's as its own: the reading contradicts the labels everywhere.
        "only_bg": eye[[1, 1, 0, 0]],
        "mixed_same": eye[[1, 0, 0, 0]],  # right only for probe 1
        "mixed_rand": eye[[0, 0, 1, 1]],  # right for all
    }
    original = eye[[0, 0, 1, 1]]
    y, same_agrees, rand_agrees, both = bg.swap_agreement(test, original)
    assert y.tolist() == [0, 0, 1, 1] and both.all()
    assert same_agrees.all() and not rand_agrees.any()  # by label, whatever the reading
    estimate, low = module.accuracy_harm(test, original, variants)
    # terms: same-class background right minus other-class background right
    assert estimate == pytest.approx(-3 / 4)
    assert low == pytest.approx(module.bonett_price_low(np.array([-1.0, 0.0, -1.0, -1.0])))
    read, read_low = module.reading_harm(test, original, variants)
    # sorted by the reading, the other-class background "agrees": P(rand) - P(same)
    assert read == pytest.approx(3 / 4)
    assert read_low == pytest.approx(cal_low(np.array([1.0, 0.0, 1.0, 1.0])))


def cal_low(d: np.ndarray) -> float:
    from saliency_callback.shortcuts import calibration

    return calibration.harm_estimate(d).low


def test_boxes_and_imperfect_boxes():
    module = load()
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 2:6, 3:5] = True
    masks[1, 0:10, 9] = True
    boxes = module.boxes_of(masks)
    assert boxes.tolist() == [[3, 2, 5, 6], [9, 0, 10, 10]]
    loose = module.imperfect_boxes(boxes, 10, "loose box", 0)
    assert loose.tolist()[0] == [2, 1, 6, 7]  # grown by a quarter of 2 and 4 on each side
    shifted = module.imperfect_boxes(boxes, 10, "shifted box", 0)
    size = boxes[:, 2:] - boxes[:, :2]
    assert (np.abs(shifted - boxes) <= np.ceil(np.tile(size, 2) / 4)).all()
    assert (shifted != boxes).any()
