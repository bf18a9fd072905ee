"""SaliencyCallback under `keras.distribution.DataParallel` on JAX (two host CPU devices).

The device count must be set before JAX initialises, so the scenario runs in a fresh process
that writes the event files and `result.npz` into `tmp_path`, read back here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKEND
from tb_events import event_files, read_run

import saliency_callback

pytestmark = pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution on JAX")

PACKAGE_ROOT = Path(saliency_callback.__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parents[1]  # conftest and helpers

SCRIPT = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    from conftest import images, tiny_cnn
    import saliency_callback as sc

    out = sys.argv[1]
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    probes = images(4)
    cb = sc.SaliencyCallback(
        probes,
        log_dir=out,
        method="gradcam",
        display=sc.Display(sigma=0),
        runtime=sc.Runtime(strict=True),
    )
    x, y = images(16, seed=1), np.arange(16) % 3
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb])
    replicas = len(model.weights[0].value.sharding.device_set)
    dist = sc.Explainer(model, "gradcam")(probes)
    keras.distribution.set_distribution(None)
    plain_model = tiny_cnn()
    plain_model.set_weights(model.get_weights())
    plain = sc.Explainer(plain_model, "gradcam")(probes)
    np.savez(
        out + "/result.npz", devices=len(devices), replicas=replicas, dist=dist.attributions,
        plain=plain.attributions, confidence=plain.confidence,
    )
    """
)


def test_data_parallel_writes_one_set_of_summaries_equal_to_one_device(tmp_path):
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), str(TESTS)]),
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = np.load(tmp_path / "result.npz")
    assert int(result["devices"]) == 2 and int(result["replicas"]) == 2
    np.testing.assert_allclose(result["dist"], result["plain"], rtol=1e-4, atol=1e-6)
    assert np.abs(result["plain"]).max() > 0
    assert len(event_files(str(tmp_path / "saliency"))) == 1
    run = read_run(str(tmp_path / "saliency"))
    assert [s for s, _ in run.scalars["saliency/confidence"]] == [0, 1]
    assert [s for s, _ in run.images["saliency/probes"]] == [0, 1]
    assert len(run.images["saliency/probes"][-1][1]) == 4
    last = run.scalars["saliency/confidence"][-1][1]
    np.testing.assert_allclose(last, result["confidence"].mean(), rtol=1e-5)
