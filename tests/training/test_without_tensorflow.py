"""A JAX user without TensorFlow (#30): in a subprocess where `import tensorflow` fails, a fit
with the callback writes event files that TensorBoard's own reader and the Saliency tab's read,
and resuming reads them; with the backend left at `tensorflow`, the package says what to run."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCK = textwrap.dedent(
    """
    import sys
    for name in list(sys.modules):
        if name == "tensorflow" or name.startswith("tensorflow."):
            del sys.modules[name]
    sys.modules["tensorflow"] = None  # `import tensorflow` raises ModuleNotFoundError
    """
)
FIT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    import saliency_callback as sc
    from tb_events import read_run
    from saliency_callback.tensorboard_plugin import events, summary
    from saliency_callback.training.resume import read_history

    log_dir = sys.argv[1]
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 12, 12, 3)).astype("float32")
    y = np.arange(16) % 2
    masks = np.zeros((16, 12, 12), bool)
    masks[:, 3:9, 3:9] = True
    model = keras.Sequential([
        keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    callback = sc.SaliencyCallback(x[:6], y[:6], masks[:6], log_dir=log_dir, method="vanilla")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    run = read_run(log_dir + "/saliency")
    tab = events.RunReader(log_dir + "/saliency").refresh()
    probes = {s: len(events.read_pngs(ref, summary.PROBES)) for s, ref in
              tab.images.get(summary.PROBES, {}).items()}
    print(json.dumps({
        "backend": keras.backend.backend(),
        "tensorflow": sys.modules.get("tensorflow", "absent") is not None,
        "image_steps": {t: [s for s, _ in v] for t, v in run.images.items()},
        "image_shapes": {t: [list(im.shape) for im in v[-1][1]] for t, v in run.images.items()},
        "scalars": {t: v for t, v in run.scalars.items()},
        "tab_scalars": {t: sorted(v.items()) for t, v in tab.scalars.items()},
        "tab_probe_samples": probes,
        "resume_steps": sorted(read_history(log_dir + "/saliency").steps),
    }))
    """
)


def _python(code: str, *args: str, backend: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )


def test_a_jax_fit_without_tensorflow_writes_what_tensorboard_and_the_tab_read(tmp_path):
    pytest.importorskip("jax")
    result = _python(FIT, str(tmp_path), backend="jax")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    assert out["tensorflow"] is False  # nothing imported it
    assert out["image_steps"]["saliency/probes"] == [0, 1]
    assert all(shape[2] == 3 for shape in out["image_shapes"]["saliency/probes"])
    assert len(out["image_shapes"]["saliency/probes"]) >= 1
    # The tab reads the very values TensorBoard's reader reads, and the probes' pictures.
    for tag, points in out["scalars"].items():
        if tag.startswith("saliency/"):
            assert [list(p) for p in out["tab_scalars"][tag]] == [list(p) for p in points]
    assert out["scalars"]["saliency/mass_in_mask"]
    assert out["tab_probe_samples"] == {
        str(s): len(out["image_shapes"]["saliency/probes"]) for s in (0, 1)
    }
    assert out["resume_steps"] == [0, 1]


def test_the_tensorflow_backend_without_tensorflow_names_the_command(tmp_path):
    code = "import saliency_callback as sc\nsc.SaliencyCallback\n"
    result = _python(code, backend="tensorflow")
    assert result.returncode != 0
    assert 'pip install \\"saliency_callback[tensorflow]\\"' in result.stderr or (
        'pip install "saliency_callback[tensorflow]"' in result.stderr
    ), result.stderr[-2000:]
    assert "KERAS_BACKEND=jax" in result.stderr
