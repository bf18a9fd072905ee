"""The fills benchmark's quick mode: a table per sharpness family, written between its markers,
and the shifted copy keeps a blurred photograph's sharpness where the per-pixel fill does not.
Numbers are parsed from the page, never matched as substrings."""

from __future__ import annotations

from bench_pages import load_benchmark


def rows_of(block: str) -> dict[str, list[float]]:
    lines = [line for line in block.splitlines() if line.startswith("| ")][1:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {c[0]: [float(x) for x in c[1:]] for c in cells}


def test_quick_fills_benchmark(tmp_path):
    module = load_benchmark("bench_fills")
    page = tmp_path / "page.md"
    page.write_text("prose\n")
    assert module.main(["--quick", "--markdown", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("prose\n") and text.count("<!-- bench_fills: begin -->") == 1
    blocks = text.split("### ")[1:]
    assert [b.split(":")[0] for b in blocks] == ["photo_blur (32 px)", "blur (synthetic, 24 px)"]
    photo = rows_of(blocks[0])
    assert set(photo) == set(module.FILLS)
    shift, resample = photo["shift (default)"], photo["resample (former default)"]
    # columns: abs log ratio, ratio per class (3), rank corr, ms / image
    assert shift[0] < 0.5 < 1.0 < resample[0]  # the hole is about as sharp as its background
    assert resample[3] > 3 * shift[3]  # the most blurred class gets a sharp hole
    assert shift[4] > 0.8  # the hole's sharpness orders the images as the backgrounds do
