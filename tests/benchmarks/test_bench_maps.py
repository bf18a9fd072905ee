"""The map-fidelity benchmark: its metrics against independent truth, and its quick mode's table
read back from the page it wrote (the reference against itself, the gradient counts, the
verdicts recomputed from the cells). Numbers are parsed from the page, never matched as text."""

from __future__ import annotations

import numpy as np
from bench_pages import load_benchmark
from scipy import stats


def rows_of(block: str) -> dict[str, list[str]]:
    lines = [line for line in block.splitlines() if line.startswith("| ")][1:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {c[0]: c[1:] for c in cells}


def test_metrics_against_independent_truth():
    module = load_benchmark("bench_maps")
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 8, 8)), rng.random((3, 8, 8))
    expected = [stats.spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(module.spearman(a, b), expected, rtol=1e-12)
    np.testing.assert_allclose(module.spearman(a, np.exp(3 * a)), 1.0)  # monotone: rank 1
    np.testing.assert_allclose(module.spearman(a, -a), -1.0)
    np.testing.assert_allclose(module.top_iou(a, a), 1.0)
    np.testing.assert_allclose(module.ssim(a, 2 * a + 1), 1.0, atol=1e-9)  # min-max scaled
    # 10 pixels, top 20% = 2: {0, 1} against {1, 2} share one of three.
    left = np.array([[[9.0, 8, 0, 0, 0, 0, 0, 0, 0, 0]]]) + np.arange(10)[::-1] * 1e-3
    right = np.array([[[0.0, 9, 8, 0, 0, 0, 0, 0, 0, 0]]])
    np.testing.assert_allclose(module.top_iou(left, right), 1 / 3)


def test_quick_maps_benchmark(tmp_path):
    module = load_benchmark("bench_maps")
    page = tmp_path / "page.md"
    page.write_text("prose\n")
    assert module.main(["--quick", "--markdown", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("prose\n") and text.count("<!-- bench_maps: begin -->") == 1
    blocks = text.split("### ")[1:]
    assert [b.split("\n")[0] for b in blocks] == [
        "Every bed",
        "background_color, small CNN, 24 px",
    ]
    bed = rows_of(blocks[1])
    assert list(bed) == [c.label for c in module.candidates((4, 10), 32)]
    # columns: gradients, ms, x vanilla, Spearman, IoU, SSIM, |d mass|, stability, change
    # error fixed, anew, meets
    for label, cells in bed.items():
        grads, ms, ratio, rho, iou, ssim, mass = (float(c) for c in cells[:7])
        stability, fixed, anew = (float(c) for c in cells[7:10])
        assert ms > 0 and ratio > 0 and -1 <= rho <= 1 and 0 <= iou <= 1 and ssim <= 1 and mass >= 0
        meets = rho >= 0.9 and iou >= 0.8 and mass <= 0.02
        near = abs(rho - 0.9) < 1e-3 or abs(iou - 0.8) < 1e-3 or abs(mass - 0.02) < 1e-3
        assert near or (cells[10] == "yes") == meets, label
        if label.startswith("vanilla"):
            assert grads == 1 and stability == 1.0 and fixed == anew
        else:
            assert grads == int(label.split("-")[1].split()[0].rstrip(","))
    assert float(bed["vanilla"][2]) == 1.0
    # The reference against itself: identical maps.
    ref = [float(c) for c in bed["SmoothGrad-32 (reference)"][3:10]]
    assert ref == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    # Another draw of the reference is not identical.
    other = [float(c) for c in bed["SmoothGrad-32, other draw"][3:10]]
    assert other[0] < 1.0 and other[4] < 1.0
    summary = rows_of(blocks[0])
    assert list(summary) == list(bed)
    assert all(summary[k][-1] == ("1/1" if bed[k][10] == "yes" else "0/1") for k in bed)
    chosen = text.split("on every bed: **")[1].split("**")[0]
    passing = [k for k in bed if bed[k][10] == "yes" and not k.startswith("SmoothGrad-32")]
    cheapest = min(passing, key=lambda k: int(bed[k][0]), default=None)
    assert chosen == (cheapest or "none") or int(bed[chosen][0]) == int(bed[cheapest][0])
