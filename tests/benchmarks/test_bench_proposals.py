"""The proposals benchmark's quick mode runs end to end and ranks GrabCut above the centre box;
with --markdown it writes what it printed into its section of the page, and only there."""

from __future__ import annotations

from bench_pages import load_benchmark, page_with_section, section_of


def test_quick_proposals_benchmark(capsys, tmp_path):
    module = load_benchmark("bench_proposals")
    out_file = tmp_path / "table.md"
    page_with_section(out_file, "bench_proposals")
    assert module.main(["--quick", "--markdown", str(out_file)]) == 0
    out = capsys.readouterr().out
    page = out_file.read_text()
    assert page.startswith("# Title\n\nprose before\n\n") and page.endswith("prose after\n")
    body = section_of(page, "bench_proposals")
    assert "do not edit by hand" in body.splitlines()[1] and "stale" not in page
    assert body.endswith("\n" + out.strip() + "\n\n")  # the printed text, after the header
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
