"""The Saliency tab's backend: its event reader against TensorBoard's own reader, the run's
summary (verdict, curves, threshold, bands), thumbnails against the rendered panels, the routes
through a real data provider, and the loader that must never stop TensorBoard.

Runs are written through the package's own writer (`benchmarks/bench_dashboard.py`'s
`write_synthetic_run`, which drives `worker.StepWriter` as the callback does); the browser and a
real `fit` are in `test_dashboard_browser.py`.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest
from hand_models import entry_point_installed
from PIL import Image
from tb_events import decode_png, event_files, read_run
from werkzeug.test import Client

from saliency_callback.output.captions import CAPTION_BG_RGB
from saliency_callback.output.render import (
    SEPARATOR_PX,
    Renderer,
    caption_height,
)
from saliency_callback.output.timeline import overlay_tiles
from saliency_callback.output.writer import RunWriter
from saliency_callback.tensorboard_plugin import events, summary, thumbs
from saliency_callback.tensorboard_plugin.loader import SaliencyLoader

pytestmark = pytest.mark.tf_only  # writes with TensorFlow; the plugin itself is backend-free

ROOT = pathlib.Path(__file__).resolve().parents[2]
EPOCHS, PROBES = 13, 3  # more steps than TensorBoard's 10-sample reservoir


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_dashboard", ROOT / "benchmarks" / "bench_dashboard.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> tuple[pathlib.Path, dict]:
    """A log dir with the run `saliency` (written as the callback writes) and a run `train`
    holding no saliency summaries."""
    path = tmp_path_factory.mktemp("dashboard_logs")
    written = _bench().write_synthetic_run(str(path), epochs=EPOCHS, probes=PROBES, size=12)
    other = RunWriter(str(path), run="train")
    other.scalars({"loss": 1.0}, 0)
    other.close()
    return path, written


# -- the reader --------------------------------------------------------------------------------


def test_reader_reads_every_step_as_tensorboards_own_reader_does(logs):
    path, written = logs
    truth = read_run(str(path / "saliency"))  # TensorBoard's accumulator, keeping everything
    data = events.RunReader(str(path / "saliency")).refresh()
    assert set(data.images) == set(truth.images)
    for tag, steps in truth.images.items():
        assert sorted(data.images[tag]) == [s for s, _ in steps] == list(range(EPOCHS))
        for step, pictures in steps:
            ref = data.images[tag][step]
            assert ref.samples == len(pictures)
            decoded = [decode_png(p) for p in events.read_pngs(ref, tag)]
            assert all(np.array_equal(a, b) for a, b in zip(decoded, pictures, strict=True))
            assert (ref.height, ref.width) == pictures[0].shape[:2]
    assert data.scalars == {t: dict(v) for t, v in truth.scalars.items()}
    assert data.texts == {t: dict(v) for t, v in truth.texts.items()}
    assert data.descriptions[summary.PROBES] == truth.descriptions[summary.PROBES]
    assert data.scalars["saliency/background/flip_rate"] == pytest.approx(written["flip_rate"])


def test_reader_is_incremental_and_waits_for_a_record_still_being_written(logs, tmp_path):
    path, _ = logs
    (source,) = event_files(str(path / "saliency"))
    content = pathlib.Path(source).read_bytes()
    run = tmp_path / "run"
    run.mkdir()
    target = run / os.path.basename(source)
    reader = events.RunReader(str(run))
    assert reader.refresh().empty
    cut = len(content) // 2  # almost surely inside a record
    target.write_bytes(content[:cut])
    half = sorted(reader.refresh().images[summary.PROBES])
    assert 0 < len(half) < EPOCHS
    with open(target, "ab") as f:
        f.write(content[cut:])
    assert sorted(reader.refresh().images[summary.PROBES]) == list(range(EPOCHS))
    assert reader.refresh().scalars == events.RunReader(str(path / "saliency")).refresh().scalars


def test_a_restart_discards_the_steps_written_after_it_as_tensorboard_does(tmp_path):
    writer = RunWriter(str(tmp_path))
    for step in range(6):
        writer.scalars({"saliency/mass_in_mask": float(step)}, step)
    writer.restart(3, twice=True)
    for step in (3, 4):
        writer.scalars({"saliency/mass_in_mask": 10.0 + step}, step)
    writer.close()
    served = read_run(str(tmp_path / "saliency"), served=True)  # TensorBoard's server
    data = events.RunReader(str(tmp_path / "saliency")).refresh()
    expected = {0: 0.0, 1: 1.0, 2: 2.0, 3: 13.0, 4: 14.0}
    assert data.scalars["saliency/mass_in_mask"] == expected
    assert dict(served.scalars["saliency/mass_in_mask"]) == expected


def test_crc_of_the_length_header_matches_tensorboards():
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    for length in (0, 13, 2**20 + 7, 2**40):
        header = length.to_bytes(8, "little")
        assert events.masked_crc32c(header) == masked_crc32c(header)


# -- the run's summary -------------------------------------------------------------------------


def test_verdict_and_curves_of_a_run_with_an_alarm(logs):
    path, written = logs
    data = events.RunReader(str(path / "saliency")).refresh()
    body = summary.run_summary("saliency", data)
    v = body["verdict"]
    assert v["state"] == "alarm" and v["first"] == written["alarm_step"]
    assert v["alarm_steps"] == [written["alarm_step"]]
    assert v["monitor"] == "background/flip_rate"
    assert v["messages"][0][0] == written["alarm_step"] and "Synthetic alarm" in v["messages"][0][1]
    names = [s["name"] for s in body["signals"]]
    assert names[0] == "background/flip_rate"  # the alarm's signal first
    assert {"background/reliance", "background/gap", "mass_in_mask"} <= set(names)
    # per-probe values, chance levels, the limit and the alarm itself are not curves
    assert not [n for n in names if "probe_" in n or "chance" in n or n.startswith("alarm")]
    flip = body["signals"][0]
    assert flip["limit"] == [[s, 0.5] for s in range(EPOCHS)] and flip["side"] == "above"
    assert [p[0] for p in flip["points"]] == list(range(EPOCHS))
    mass = next(s for s in body["signals"] if s["name"] == "mass_in_mask")
    assert mass["chance"] == [[s, pytest.approx(0.2)] for s in range(EPOCHS)]
    assert body["probes"] == PROBES and len(body["steps"]) == EPOCHS
    assert body["background"][EPOCHS - 1]["samples"] == PROBES
    values = summary.per_probe(data, 1, 4)
    assert values == [
        {
            "name": "mass_in_mask",
            "label": summary.KNOWN["mass_in_mask"][0],
            "unit": "fraction",
            "value": pytest.approx(data.scalars["saliency/mass_in_mask/probe_01"][4]),
        }
    ]


def test_harm_bounds_unknown_signals_and_states_without_alarm():
    data = events.RunData()
    data.scalars = {
        "saliency/background/harm": {0: 0.1, 1: 0.3},
        "saliency/background/harm_low": {0: 0.0, 1: 0.2},
        "saliency/background/harm_high": {0: 0.2, 1: 0.4},
        "saliency/zeta_custom": {0: 5.0, 1: float("nan")},
        "saliency/nonfinite": {2: 1.0},
    }
    body = summary.run_summary("r", data)
    assert body["verdict"]["state"] == "none"
    assert body["verdict"]["harm"] == {
        "step": 1,
        "value": 0.3,
        "low": 0.2,
        "high": 0.4,
        "probes": None,  # a run written before `harm_probes`: the bound decides
        "total": 0,
        "cannot_tell": False,
        "sentence": None,
    }
    harm, custom = body["signals"]
    assert harm["name"] == "background/harm" and harm["band"]["low"] == [[0, 0.0], [1, 0.2]]
    assert custom["name"] == "zeta_custom" and custom["points"] == [[0, 5.0], [1, None]]
    assert body["nonfinite"] == [2]
    data.scalars["saliency/alarm"] = {0: 0.0, 1: 0.0}
    assert summary.verdict(data)["state"] == "clear"


def test_the_calibrated_alarm_draws_its_limit_on_the_harm_curve_shown_first():
    """The default alarm watches `harm_low`: its threshold belongs on the harm curve (whose
    band's lower edge is `harm_low`), and that curve leads."""
    data = events.RunData()
    data.scalars = {
        "saliency/background/reliance": {0: 0.9, 1: 0.9},
        "saliency/background/harm": {0: 0.5, 1: 0.6},
        "saliency/background/harm_low": {0: 0.3, 1: 0.4},
        "saliency/background/harm_high": {0: 0.7, 1: 0.8},
        "saliency/alarm": {0: 1.0, 1: 0.0},
        "saliency/alarm_limit/background/harm_low": {0: 0.05, 1: 0.05},
    }
    curves = summary.run_summary("r", data)["signals"]
    assert [c["name"] for c in curves] == ["background/harm", "background/reliance"]
    assert curves[0]["limit"] == [[0, 0.05], [1, 0.05]] and curves[1]["limit"] is None


# -- pictures ----------------------------------------------------------------------------------


def test_thumbnail_is_the_overlay_tile_of_the_panel_as_rendered():
    assert (thumbs.SEPARATOR_PX, thumbs.CAPTION_BG_RGB) == (SEPARATOR_PX, CAPTION_BG_RGB)
    rng = np.random.default_rng(0)
    images, maps = rng.random((3, 20, 20, 3)), rng.random((3, 20, 20))
    for renderer, px in ((Renderer(min_tile=64, max_tile=160), 64), (Renderer(min_tile=96), 40)):
        panels = renderer.panels(images, maps, ["#0 cat", "#1 dog", "#2 a long caption " * 5])
        overlays = overlay_tiles(panels, captioned=True)
        width = overlays.shape[2]
        maps_tiles = panels[
            :, -overlays.shape[1] :, width + SEPARATOR_PX : 2 * width + SEPARATOR_PX
        ]
        for i, panel in enumerate(panels):
            png = RunWriter("unused").encode(panel[None])[0]
            assert thumbs.caption_rows(Image.open(io.BytesIO(png)).convert("RGB"), 0) == (
                caption_height()
            )
            for index, truth in ((2, overlays), (1, maps_tiles)):
                thumb = np.asarray(Image.open(io.BytesIO(thumbs.tile_thumbnail(png, index, px=px))))
                assert max(thumb.shape[:2]) == min(px, overlays.shape[1])
                size = thumb.shape[1::-1]
                errors = [
                    np.abs(thumb.astype(int) - np.asarray(Image.fromarray(o).resize(size))).mean()
                    for o in truth
                ]
                assert np.argmin(errors) == i and errors[i] < 8, errors  # resampling differs


def test_lru_keeps_within_its_capacity_and_computes_a_missing_value_once():
    cache: thumbs.LRU[int, bytes] = thumbs.LRU(1000, len)
    for key in range(50):
        cache.get(key, lambda: b"x" * 100)
    assert cache.total <= 1000 and len(cache) == 10
    calls = []
    gate = threading.Event()

    def make() -> bytes:
        calls.append(1)
        gate.wait(5)
        return b"y"

    threads = [threading.Thread(target=cache.get, args=("k", make)) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1 and cache.get("k", lambda: b"z") == b"y"


# -- routes, through a real data provider ---------------------------------------------------


@pytest.fixture(scope="module")
def plugin(logs):
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin

    path, _ = logs
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(path))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(path))
    context = base_plugin.TBContext(logdir=str(path), data_provider=provider, multiplexer=mux)
    loaded = SaliencyLoader().load(context)
    assert loaded is not None
    return loaded


def get(plugin, route: str, **params):
    response = Client(plugin.get_plugin_apps()[route]).get(route, query_string=params)
    return response.status_code, response.headers.get("Content-Type", ""), response.get_data()


def test_routes_list_read_and_serve_the_run(plugin, logs):
    path, written = logs
    assert plugin.is_active()
    code, _, body = get(plugin, "/runs")
    assert code == 200 and json.loads(body) == {"runs": ["saliency"], "other_runs": ["train"]}
    code, _, body = get(plugin, "/run", run="saliency")
    run = json.loads(body)
    assert code == 200 and run["verdict"]["first"] == written["alarm_step"]
    truth = read_run(str(path / "saliency"))
    step, sample = 11, 2  # past TensorBoard's 10-sample reservoir
    code, kind, png = get(
        plugin, "/image", run="saliency", tag="background", step=step, sample=sample
    )
    assert code == 200 and kind == "image/png"
    assert np.array_equal(decode_png(png), dict(truth.images[summary.BACKGROUND])[step][sample])
    code, kind, png = get(plugin, "/thumb", run="saliency", step=step, probe=sample)
    assert code == 200 and kind == "image/png" and max(Image.open(io.BytesIO(png)).size) <= 64
    code, _, body = get(plugin, "/cell", run="saliency", step=step, probe=sample)
    cell = json.loads(body)
    assert cell["panel"] and cell["background"] and cell["values"][0]["name"] == "mass_in_mask"
    code, kind, js = get(plugin, "/index.js")
    assert code == 200 and "javascript" in kind and b"export async function render" in js
    assert get(plugin, "/style.css")[0] == 200


@pytest.mark.parametrize(
    ("route", "params", "code", "words"),
    [
        ("/run", {}, 400, "missing parameter `run`"),
        ("/run", {"run": "train"}, 404, "no run 'train'"),
        ("/run", {"run": "../saliency"}, 404, "no run"),
        ("/thumb", {"run": "saliency", "step": "x", "probe": 0}, 400, "`step` to be an integer"),
        ("/thumb", {"run": "saliency", "step": 99, "probe": 0}, 404, "no step 99"),
        ("/image", {"run": "saliency", "step": 0, "sample": 7}, 404, "sample 7"),
        ("/image", {"run": "saliency", "tag": "x", "step": 0, "sample": 0}, 400, "`tag` in"),
        ("/thumb", {"run": "saliency", "step": 0, "probe": 0, "tile": "x"}, 400, "`tile` in"),
    ],
)
def test_bad_requests_get_a_clear_json_error(plugin, route, params, code, words):
    got, kind, body = get(plugin, route, **params)
    assert (got, kind) == (code, "application/json")
    assert words in json.loads(body)["error"]


# -- the loader --------------------------------------------------------------------------------


class BrokenLoader(SaliencyLoader):
    module = "saliency_callback.tensorboard_plugin._no_such_module"


def test_loader_logs_a_failing_import_and_loads_nothing(caplog):
    with caplog.at_level(logging.ERROR):
        assert BrokenLoader().load(context=None) is None
    assert "could not be loaded" in caplog.text and "_no_such_module" in caplog.text


def test_the_entry_point_module_imports_nothing_fragile():
    code = (
        "import sys; import saliency_callback.tensorboard_plugin.loader; "
        "print(sorted(m for m in ('numpy', 'PIL', 'tensorflow', 'keras', 'google.protobuf', "
        "'saliency_callback.tensorboard_plugin.plugin') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(
    not entry_point_installed(),
    reason="the installed saliency_callback metadata has no tensorboard_plugins entry point "
    "(reinstall with `pip install -e .`)",
)
def test_tensorboard_finds_the_loader_through_the_installed_entry_point():
    from tensorboard import default

    assert any(p.__name__ == "SaliencyLoader" for p in default.get_dynamic_plugins())


def test_a_broken_plugin_does_not_stop_tensorboard(tmp_path, logs):
    from tensorboard_browser import get_json, tensorboard

    path, _ = logs
    code = (
        "import sys; from absl import app; from tensorboard import default, program; "
        "from saliency_callback.tensorboard_plugin import loader; "
        "Broken = type('Broken', (loader.SaliencyLoader,), {'module': 'no_such.module'}); "
        "plugins = [p for p in default.get_plugins() if getattr(p, '__name__', '') != "
        "'SaliencyLoader'] + [Broken]; "
        "tb = program.TensorBoard(plugins=plugins); app.run(tb.main, flags_parser=tb.configure)"
    )
    log = tmp_path / "tb.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    with tensorboard(
        str(path),
        lambda base: "scalars" in get_json(f"{base}data/plugins_listing"),
        60.0,
        log_file=str(log),
        command=[sys.executable, "-c", code],
        env=env,
    ) as base:
        listing = get_json(f"{base}data/plugins_listing")
    assert "saliency" not in listing and listing["scalars"]["enabled"]
    assert "could not be loaded" in log.read_text()


def test_every_static_file_is_package_data_and_served(plugin):
    tomllib = pytest.importorskip("tomllib")
    from saliency_callback.tensorboard_plugin.plugin import STATIC

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["saliency_callback"]
    package = ROOT / "saliency_callback"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    files = sorted(STATIC.iterdir())
    assert files and set(files) <= shipped
    assert {"/" + f.name for f in files} <= set(plugin.get_plugin_apps())
    entry = config["project"]["entry-points"]["tensorboard_plugins"]["saliency"]
    assert entry == "saliency_callback.tensorboard_plugin.loader:SaliencyLoader"
