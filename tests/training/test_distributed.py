"""SaliencyCallback under Keras's own `tf.distribute` strategies.

Logical CPU devices and `MultiWorkerMirroredStrategy` must be configured before TensorFlow
initialises, which this pytest process has already done, so each scenario runs in fresh
processes (`distributed_worker.py`) with a bounded timeout; they write event files and a
`result.json` into `tmp_path`, read back here with TensorBoard's reader.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tb_events import event_files, read_run

import saliency_callback
from saliency_callback.training.checks import is_chief

pytestmark = pytest.mark.tf_only  # tf.distribute strategies

WORKER = Path(__file__).parents[1] / "distributed_worker.py"
PACKAGE_ROOT = Path(saliency_callback.__file__).resolve().parents[1]  # the package under test
TIMEOUT_S = 120
N = 4
IMAGE_TAGS = ("saliency/overview", "saliency/probes")
PORT_TAKEN = "Could not start gRPC server"  # TF's message when a worker's port is in use
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
    env.pop("TF_CONFIG", None)
    env.update(
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="2",
        no_proxy="127.0.0.1,localhost",  # gRPC between the local workers: loopback only
        NO_PROXY="127.0.0.1,localhost",
    )
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def start(mode: str, out: Path, log: Path, **env: str) -> subprocess.Popen:
    # Output goes to a file, not a pipe: a full pipe would stall a worker inside a collective.
    with open(log, "w") as f:
        return subprocess.Popen(
            [sys.executable, str(WORKER), mode, str(out)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=worker_env(**env),
        )


def tail(log: Path, n: int = 4000) -> str:
    return log.read_text(errors="replace")[-n:] if log.exists() else "<no output>"


def wait_all(procs: list[subprocess.Popen], logs: list[Path]) -> list[int]:
    """Exit codes of `procs`, within TIMEOUT_S in all.

    When one process fails, the others (which would wait for it in a collective) are killed at
    once; on timeout all are killed and the test fails with the end of each one's output.
    """
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            time.sleep(0.2)
        else:
            pytest.fail(
                f"distributed workers did not finish within {TIMEOUT_S} s:\n"
                + "\n".join(f"--- {log.name}:\n{tail(log)}" for log in logs)
            )
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [p.returncode for p in procs]


def loopback_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def images_equal(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and (x == y).all() for x, y in zip(a, b, strict=True)
    )


# -- MirroredStrategy --------------------------------------------------------------------------


def test_mirrored_strategy_logs_the_same_images_and_scalars_as_one_device(tmp_path):
    out, log = tmp_path / "mirrored", tmp_path / "mirrored.log"
    (code,) = wait_all([start("mirrored", out, log)], [log])
    assert code == 0, tail(log)
    result = json.loads((out / "result.json").read_text())
    # The model really is mirrored over two logical CPU devices.
    assert result["replicas"] == 2
    assert result["model_strategy"] == "MirroredStrategy"
    assert result["variable_types"] == ["MirroredVariable"]
    # The compiled gradient step and forward pass (the default SmoothGrad and the background
    # tests use it) read MirroredVariables without retracing: one trace each.
    assert result["mirrored_traces"] == result["plain_traces"] == 2
    assert result["plain_steps"] == result["mirrored_steps"] == [-1, 0, 1]

    plain = read_run(str(out / "plain" / "saliency"))
    mirrored = read_run(str(out / "mirrored" / "saliency"))
    assert len(event_files(str(out / "mirrored" / "saliency"))) == 1
    assert mirrored.tags == plain.tags
    assert mirrored.descriptions == plain.descriptions
    for tag in IMAGE_TAGS:
        assert [s for s, _ in mirrored.images[tag]] == [-1, 0, 1]
    assert [len(imgs) for _, imgs in mirrored.images["saliency/probes"]] == [N] * 3

    # Step -1 is logged before training from identical weights: the output must be identical.
    for tag in IMAGE_TAGS:
        assert images_equal(plain.images[tag][0][1], mirrored.images[tag][0][1]), tag
    for tag, values in plain.scalars.items():
        assert mirrored.scalars[tag][0] == values[0], tag

    # Training with two replicas sums per-replica gradients in another order than one device
    # does, so trained weights may differ in the last bits; the logged images and scalars may
    # then differ by a rounding step at most, never in substance.
    np.testing.assert_allclose(result["mirrored_loss"], result["plain_loss"], rtol=1e-5)
    assert result["max_weight_diff"] < 1e-5
    for tag in IMAGE_TAGS:
        for (step, a), (_, b) in zip(plain.images[tag][1:], mirrored.images[tag][1:], strict=True):
            assert len(a) == len(b), (tag, step)
            for x, y in zip(a, b, strict=True):
                assert x.shape == y.shape, (tag, step)
                diff = np.abs(x.astype(int) - y.astype(int))
                assert diff.max() <= 8 and (diff > 0).mean() < 0.01, (tag, step)
    for tag, values in plain.scalars.items():
        steps = [s for s, _ in values]
        assert [s for s, _ in mirrored.scalars[tag]] == steps, tag
        np.testing.assert_allclose(
            [v for _, v in mirrored.scalars[tag]], [v for _, v in values], rtol=1e-5, err_msg=tag
        )

    # And for the trained weights themselves: the mirrored model's final weights, set into a
    # plain model, give exactly the images the callback logged under the strategy at step 1.
    reference = read_run(str(out / "reference" / "saliency"))
    for tag in IMAGE_TAGS:
        assert reference.images[tag][0][0] == mirrored.images[tag][-1][0] == 1
        assert images_equal(reference.images[tag][0][1], mirrored.images[tag][-1][1]), tag
    for tag, values in reference.scalars.items():
        assert values == [mirrored.scalars[tag][-1]], tag


# -- MultiWorkerMirroredStrategy ---------------------------------------------------------------


def run_two_workers(tmp_path: Path, attempt: int):
    ports = loopback_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    outs = [tmp_path / f"try{attempt}" / f"worker{i}" for i in range(2)]
    logs = [tmp_path / f"try{attempt}_worker{i}.log" for i in range(2)]
    procs = [
        start(
            "multiworker",
            outs[i],
            logs[i],
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]
    return wait_all(procs, logs), outs, logs


def test_multi_worker_only_the_chief_writes_and_nobody_blocks(tmp_path):
    codes, outs, logs = run_two_workers(tmp_path, 0)
    if codes != [0, 0] and any(PORT_TAKEN in tail(log, 10**6) for log in logs):
        codes, outs, logs = run_two_workers(tmp_path, 1)  # a port was taken in the meantime
    for code, log in zip(codes, logs, strict=True):
        assert code == 0, f"--- {log.name}:\n{tail(log)}"
    chief, other = (json.loads((o / "result.json").read_text()) for o in outs)

    # Both processes trained together, under Keras's fit, in lockstep.
    for i, r in enumerate((chief, other)):
        assert r["task_index"] == i
        assert r["replicas"] == 2
        assert r["model_strategy"] == "CollectiveAllReduceStrategy"  # = MultiWorkerMirrored
        assert r["variable_types"] == ["MirroredVariable"]
        assert len(r["loss"]) == 2
        assert r["epoch_ends"] == [0, 1]  # the hooks run on every worker ...
    for a, b in zip(chief["weights"], other["weights"], strict=True):
        np.testing.assert_array_equal(a, b)  # gradients were all-reduced across the workers
    assert chief["is_chief"] and not other["is_chief"]
    assert chief["logged_steps"] == [-1, 0, 1]
    assert other["logged_steps"] == []  # ... but only the chief computes and writes

    # The non-chief wrote nothing at all: not even its log directory exists.
    assert not (outs[1] / "logs").exists()
    assert glob.glob(str(outs[1] / "**" / "events.out.tfevents.*"), recursive=True) == []
    # The chief wrote one event file with every step, from the trained, synchronised weights.
    run_dir = outs[0] / "logs" / "saliency"
    assert len(event_files(str(run_dir))) == 1
    run = read_run(str(run_dir))
    for tag in IMAGE_TAGS:
        assert [s for s, _ in run.images[tag]] == [-1, 0, 1]
    assert [len(imgs) for _, imgs in run.images["saliency/probes"]] == [N] * 3
    assert [s for s, _ in run.scalars["saliency/confidence"]] == [-1, 0, 1]
    probs = np.array(chief["probe_probs"])
    logged = [run.scalars[f"saliency/confidence/probe_{i:02d}"][-1][1] for i in range(N)]
    np.testing.assert_allclose(logged, probs.max(axis=1), rtol=1e-5)


# -- which task writes ---------------------------------------------------------------------------


def fake_model(task_type, task_id, cluster, multi_worker=True):
    resolver = SimpleNamespace(
        task_type=task_type,
        task_id=task_id,
        cluster_spec=lambda: SimpleNamespace(as_dict=lambda: cluster),
    )
    extended = SimpleNamespace(_in_multi_worker_mode=lambda: multi_worker)
    return SimpleNamespace(
        distribute_strategy=SimpleNamespace(cluster_resolver=resolver, extended=extended)
    )


WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
WITH_CHIEF = {"chief": ["127.0.0.1:0"], **WORKERS}


@pytest.mark.parametrize(
    "model,expected",
    [
        (SimpleNamespace(), True),  # no strategy attribute
        (SimpleNamespace(distribute_strategy=SimpleNamespace()), True),  # no resolver
        (fake_model("worker", 1, WORKERS, multi_worker=False), True),  # one worker only
        (fake_model("worker", 0, WORKERS), True),  # worker 0 is the chief without a chief task
        (fake_model("worker", 1, WORKERS), False),
        (fake_model("chief", 0, WITH_CHIEF), True),
        (fake_model("worker", 0, WITH_CHIEF), False),
    ],
    ids=["no-strategy", "mirrored", "single-worker", "worker0", "worker1", "chief", "w0+chief"],
)
def test_only_the_chief_task_writes(model, expected):
    assert is_chief(model) is expected
