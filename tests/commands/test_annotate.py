"""`saliency-callback annotate` without a browser: its inputs, errors, server API and autosave.

The command runs as a subprocess (`python -m saliency_callback annotate`); the page's API is
driven with `urllib`, as the page would.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import types
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from annotate_browser import annotate_server, command, environment, write_images
from PIL import Image

from saliency_callback.commands.annotate.loading import read_labels, start_probes
from saliency_callback.data.loading import LoadError
from saliency_callback.data.probe_file import ProbeFile, read_probe_file, write_probe_file

pytestmark = [pytest.mark.timeout(120), pytest.mark.tf_only]  # backend-free
H, W = 20, 24


def api(server, path: str, body=None, token: str | None = None, host: str | None = None):
    """The JSON (or bytes) answer of the server's API, as the page would ask."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.base + path, data=data)
    request.add_header("X-Token", server.token if token is None else token)
    if host is not None:
        request.add_header("Host", host)
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
        is_json = response.headers["Content-Type"] == "application/json"
        return json.loads(raw) if is_json else raw


def run(args: list[str], tmp_path: Path) -> tuple[int, str]:
    import subprocess

    done = subprocess.run(
        command(args), capture_output=True, text=True, cwd=tmp_path, timeout=60, env=environment()
    )
    return done.returncode, done.stderr


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("annotate")
    write_images(root / "images", 3, (H, W))
    return root / "images"


# -- bad inputs: one line, no traceback ---------------------------------------------------------


def _bad_inputs(tmp: Path, images_dir: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "notes.png").write_text("not an image")
    good = sorted(images_dir.iterdir())[0]
    broken = tmp / "broken.png"
    broken.write_bytes(good.read_bytes()[:60])  # a PNG header, then nothing
    Image.new("RGB", (W + 4, H)).save(tmp / "wider.png")
    (tmp / "taken.npz").write_bytes(b"")
    np.savez(tmp / "other.npz", x=np.zeros(2))
    out = ["--out", str(tmp / "p.npz")]
    return {
        "missing": ([str(tmp / "nope.png"), *out], "image file not found"),
        "not an image": ([str(tmp / "notes.png"), *out], "not an image"),
        "unreadable": ([str(broken), *out], "cannot decode image"),
        "mixed sizes": ([str(good), str(tmp / "wider.png"), *out], "different sizes"),
        "no --out": ([str(good)], "--out FILE.npz is required"),
        "existing --out": ([str(good), "--out", str(tmp / "taken.npz")], "already exists"),
        "not a probe file": ([str(tmp / "other.npz")], "not a probe file"),
        "empty dir": ([str(tmp / "empty"), *out], "no images in directory"),
    }


def test_bad_inputs_are_one_line_errors(images_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    for case, (args, words) in _bad_inputs(tmp_path, images_dir).items():
        code, stderr = run(args, tmp_path)
        assert code in (1, 2), (case, stderr)
        assert stderr.startswith("saliency-callback: error: "), (case, stderr)
        assert words in stderr, (case, stderr)
        assert "Traceback" not in stderr and stderr.count("\n") == 1, (case, stderr)
    assert not (tmp_path / "p.npz").exists()


def test_a_port_in_use_is_a_one_line_error(images_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stderr = run(
            [str(images_dir), "--out", str(tmp_path / "p.npz"), "--port", str(port)], tmp_path
        )
    assert code == 1 and f"port {port} on 127.0.0.1 is in use" in stderr, stderr
    assert "Traceback" not in stderr


# -- the server -----------------------------------------------------------------------------


def test_api_autosaves_every_change_and_guards_its_door(images_dir, tmp_path):
    out = tmp_path / "probes.npz"
    side = tmp_path / "probes.autosave.npz"
    with annotate_server([str(images_dir), "--out", str(out), "--class-names", "a,b,c"]) as s:
        meta = api(s, "/api/meta")
        assert (meta["n"], meta["height"], meta["width"]) == (3, H, W)
        assert meta["names"] == sorted(p.name for p in images_dir.iterdir())
        pixels = np.frombuffer(api(s, "/api/images"), np.uint8).reshape(3, H, W, 4)
        first = np.asarray(Image.open(images_dir / meta["names"][0]).convert("RGB"))
        np.testing.assert_array_equal(pixels[0, ..., :3], first)
        mask = np.zeros((H, W), np.uint8)
        mask[3:9, 2:7] = 1
        change = {"mask": base64.b64encode(mask.tobytes()).decode(), "label": 2}
        api(s, "/api/probe/1", change | {"source": "drawn", "checked": True})
        with np.load(side) as autosaved:  # written at once, before any save
            np.testing.assert_array_equal(autosaved["masks"][1], mask.astype(bool))
            assert autosaved["labels"].tolist() == [-1, 2, -1]
        masks = np.frombuffer(api(s, "/api/masks"), np.uint8).reshape(3, H, W)
        np.testing.assert_array_equal(masks[1], mask)
        assert not out.exists()

        for bad, status in [
            ({"label": 7}, 400),  # only 3 classes
            ({"mask": "AAAA"}, 400),  # the wrong size
            ({"source": "guessed"}, 400),
            ({"colour": "red"}, 400),
        ]:
            with pytest.raises(urllib.error.HTTPError) as info:
                api(s, "/api/probe/0", bad)
            assert info.value.code == status
        with pytest.raises(urllib.error.HTTPError) as info:
            api(s, "/api/meta", token="wrong")
        assert info.value.code == 403
        with pytest.raises(urllib.error.HTTPError) as info:
            api(s, "/api/meta", host="evil.example:80")  # DNS rebinding
        assert info.value.code == 403

        assert "1 drawn" in api(s, "/api/save", {})["summary"]
        assert not side.exists()
    saved = read_probe_file(out)
    np.testing.assert_array_equal(saved.masks[1], mask.astype(bool))
    assert saved.class_names == ["a", "b", "c"]


def test_ctrl_c_keeps_the_work_and_the_same_command_resumes_it(images_dir, tmp_path):
    out = tmp_path / "probes.npz"
    args = [str(images_dir), "--out", str(out)]
    with annotate_server(args) as s:
        api(s, "/api/probe/2", {"skipped": True, "checked": True})
        code, _, stderr = s.stop()
    assert code == 130 and "probes.autosave.npz" in stderr, stderr
    assert not out.exists()
    with annotate_server(args) as s:
        assert api(s, "/api/meta")["skipped"] == [False, False, True]
        api(s, "/api/save", {})
        assert "resumed the unsaved work of" in s.stop()[2]
    # an existing file is edited by naming it; a different --out needs --force
    with annotate_server([str(out)]) as s:
        assert api(s, "/api/meta")["skipped"] == [False, False, True]
    code, stderr = run(args, tmp_path)
    assert code == 1 and "already exists" in stderr and "--force" in stderr
    with annotate_server([*args, "--force"]) as s:
        assert api(s, "/api/meta")["skipped"] == [False, False, False]


def test_an_autosave_of_other_images_is_never_applied(images_dir, tmp_path):
    out = tmp_path / "probes.npz"
    other = ProbeFile(images=np.zeros((3, H, W, 3), np.uint8), masks=np.ones((3, H, W), bool))
    from saliency_callback.data.probe_file import write_autosave

    write_autosave(tmp_path / "probes.autosave.npz", other)
    code, stderr = run([str(images_dir), "--out", str(out)], tmp_path)
    assert code == 1 and "unsaved work for other images" in stderr, stderr
    with annotate_server([str(images_dir), "--out", str(out), "--force"]) as s:
        # The autosave's masks (all ones) are not applied: the masks are the proposals' (or
        # empty), never the whole image.
        assert not np.frombuffer(api(s, "/api/masks"), np.uint8).all()


# -- inputs ---------------------------------------------------------------------------------


def test_size_resizes_and_a_probe_file_is_edited_as_it_is(images_dir, tmp_path):
    start = start_probes([str(images_dir)], (32, 30), None, None)
    assert start.probes.images.shape == (3, 32, 30, 3) and start.edit_path is None
    expected = Image.open(sorted(images_dir.iterdir())[0]).convert("RGB")
    expected = np.asarray(expected.resize((30, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(start.probes.images[0], expected)
    path = tmp_path / "p.npz"
    write_probe_file(path, start.probes)
    again = start_probes([str(path)], None, None, None)
    assert again.edit_path == str(path)
    np.testing.assert_array_equal(again.probes.images, start.probes.images)
    with pytest.raises(LoadError, match="edited at its size"):
        start_probes([str(path)], (16, 16), None, None)


def test_proposals_prefill_the_masks(images_dir, monkeypatch):
    calls = []

    def propose_masks(images):
        calls.append(images.shape)
        n, h, w = images.shape[:3]
        masks = np.zeros((n, h, w), bool)
        masks[0, 2:6, 3:8] = True
        masks[1, 5:15, 6:18] = True  # the centre box standing in for no proposal
        boxes = np.array([[3, 2, 8, 6], [6, 5, 18, 15], [-1] * 4])
        return types.SimpleNamespace(
            masks=masks, boxes=boxes, fallback=np.array([False, True, False]), method="fake"
        )

    module = types.ModuleType("saliency_callback.shortcuts.proposals")
    module.propose_masks = propose_masks
    monkeypatch.setitem(sys.modules, "saliency_callback.shortcuts.proposals", module)
    start = start_probes([str(images_dir)], None, None, None)
    assert calls == [(3, H, W, 3)]
    assert start.probes.source.tolist() == ["proposed", "empty", "empty"]
    assert start.probes.masks[0].sum() == 20 and start.probes.boxes[0].tolist() == [3, 2, 8, 6]
    assert not start.probes.masks[1].any() and start.probes.boxes[1].tolist() == [-1] * 4
    assert start.fallback == [False, True, False] and start.probes.proposal_method == "fake"
    assert "1 probe(s) have no plausible proposal" in start.notes[0]

    module.propose_masks = lambda images: 1 / 0  # a failing proposal never stops annotating
    start = start_probes([str(images_dir)], None, None, None)
    assert not start.probes.masks.any() and "proposals failed" in start.notes[0]


def test_labels_from_a_csv(tmp_path):
    names = ["a.png", "b.png", "c.png"]
    classes = ["cat", "dog"]
    cases = {
        "1\n0\n1\n": [1, 0, 1],  # one column, in order
        "file,label\nc.png,dog\na.png,cat\nb.png,\n": [0, -1, 1],  # by name, names to indices
        "b,1\na,0\nc,0\n": [0, 1, 0],  # two columns without a header: file, label
        "image,species,weight\na.png,dog,3\nb.png,cat,4\nc.png,dog,5\n": [1, 0, 1],
    }
    for i, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"labels{i}.csv"
        path.write_text(text)
        column = ":species" if "species" in text else ""
        assert read_labels(f"{path}{column}", names, classes).tolist() == expected, text
    bad = {
        "file,label\na.png,1\n": "no row for 2 image",
        "1\n2\n": "2 labels for 3 images",
        "file,label\na.png,cow\nb.png,cat\nc.png,cat\n": "not a class index or one of",
        "file,label\na.png,5\nb.png,1\nc.png,1\n": "--class-names has 2 classes",
    }
    for i, (text, words) in enumerate(bad.items()):
        path = tmp_path / f"bad{i}.csv"
        path.write_text(text)
        with pytest.raises(LoadError, match=words):
            read_labels(str(path), names, classes)
    path = tmp_path / "named.csv"
    path.write_text("cat\ndog\ncat\n")
    with pytest.raises(LoadError, match="pass --class-names"):
        read_labels(str(path), names, None)
    with pytest.raises(LoadError, match="no column 'kind'"):
        read_labels(f"{tmp_path / 'labels0.csv'}:kind", names, classes)


def test_help_has_examples(capsys):
    from saliency_callback.commands import cli

    assert cli.main(["annotate", "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "saliency-callback annotate photos/" in text
    assert cli.main(["--help"]) == 0
    assert "saliency-callback annotate" in capsys.readouterr().out
