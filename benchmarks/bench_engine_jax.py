"""Benchmark of the saliency engine on JAX against a bare `jax.jit(jax.grad(...))` reference.

What it measures
    Like `bench_engine.py` (same workloads, 32 probes, medians of interleaved runs, ratio =
    engine / reference), on the JAX backend. The reference is the cheapest hand-written JAX:
    `jax.jit(jax.grad(...))` over `features.stateless_call(trainable, non_trainable, x)` with
    `features = keras.Model(model.inputs, head.input)`, times the Dense head's kernel plus bias
    (the pre-softmax logits), the target the argmax of the same pass; the weights are passed as
    arguments (read from the variables at each call, as the engine does). SmoothGrad-20: one
    jitted forward for the targets and 20 jitted gradient calls of 32 noisy copies, summed on
    the host. The engine's time includes validation, transfers and post-processing.

How to run
    KERAS_BACKEND=jax python benchmarks/bench_engine_jax.py [--quick] [--workload cnn]
        [--methods vanilla smoothgrad] [--markdown docs/backends.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from typing import Any

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import keras
import numpy as np
from _common import NUM_PROBES, WORKLOADS, environment, relative_diff, timed
from _markdown import command_line, fmt_ms, load_average, table, write_section

from saliency_callback import Explainer, SmoothGrad, Vanilla

SAMPLES, LEVEL, SEED, TARGET = 20, 0.15, 0, 1.10


class JaxReference:
    """Bare jitted gradients of the pre-softmax target logit (no package code)."""

    def __init__(self, model: keras.Model) -> None:
        head = model.layers[-1]
        self.head = head
        self.features = keras.Model(model.inputs, head.input)
        feats = self.features

        def logits(weights: Any, x: Any) -> Any:
            trainable, non_trainable, kernel, bias = weights
            pre, _ = feats.stateless_call(trainable, non_trainable, x, training=False)
            return pre @ kernel + bias

        def score(weights: Any, x: Any) -> Any:
            z = logits(weights, x)
            t = jnp.argmax(jax.lax.stop_gradient(z), axis=-1)
            return jnp.sum(jnp.take_along_axis(z, t[:, None], axis=1))

        def score_for(weights: Any, x: Any, t: Any) -> Any:
            return jnp.sum(jnp.take_along_axis(logits(weights, x), t[:, None], axis=1))

        self.grad = jax.jit(jax.grad(score, argnums=1))
        self.grad_for = jax.jit(jax.grad(score_for, argnums=1))
        self.predict = jax.jit(lambda w, x: jnp.argmax(logits(w, x), axis=-1))
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        bank = np.random.default_rng(SEED).standard_normal((SAMPLES, *shape)).astype(np.float32)
        self.noise = [jnp.asarray(b) for b in bank]

    def weights(self) -> Any:
        f = self.features
        return (
            [v.value for v in f.trainable_variables],
            [v.value for v in f.non_trainable_variables],
            self.head.kernel.value,
            self.head.bias.value,
        )

    def vanilla(self, x: Any) -> np.ndarray:
        return np.asarray(self.grad(self.weights(), x))

    def smooth(self, x: Any) -> np.ndarray:
        w = self.weights()
        t = self.predict(w, x)
        sigma = LEVEL * (jnp.max(x, axis=(1, 2, 3)) - jnp.min(x, axis=(1, 2, 3)))
        total = np.zeros(x.shape, np.float32)
        for noise in self.noise:
            total += np.asarray(self.grad_for(w, x + sigma[:, None, None, None] * noise, t))
        return total / SAMPLES


def compare(
    name: str, explainer: Explainer, probes: np.ndarray, ref: Callable[[], Any], repeats: int
) -> dict[str, Any]:
    """Medians of interleaved runs: engine and reference ms, their ratios, the retrace."""

    def engine() -> Any:
        return explainer(probes)

    _, _, result = timed(engine)
    _, _, expected = timed(ref)
    check = relative_diff(result.attributions, expected)
    warm = explainer.tracing_count
    wall: dict[str, list[float]] = {"engine": [], "reference": []}
    sides = {"engine": engine, "reference": ref}
    for i in range(repeats):
        for side in ("engine", "reference") if i % 2 == 0 else ("reference", "engine"):
            wall[side].append(timed(sides[side])[0])
    e, r = statistics.median(wall["engine"]), statistics.median(wall["reference"])
    print(
        f"  {name:<12} engine {e:8.1f} ms  reference {r:8.1f} ms  ratio {e / r:5.2f}  "
        f"min-ratio {min(wall['engine']) / min(wall['reference']):5.2f}  check {check:.1e}  "
        f"traces {warm} -> {explainer.tracing_count}",
        flush=True,
    )
    return {
        "engine": e,
        "reference": r,
        "ratio": e / r,
        "min ratio": min(wall["engine"]) / min(wall["reference"]),
        "retrace": explainer.tracing_count != warm,
    }


def markdown(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    """The table of docs/backends.md, from (workload, method, comparison) of this run."""
    header = [
        f"workload ({NUM_PROBES} probes)",
        "method",
        "engine",
        "bare JAX reference",
        "ratio",
        "ratio of fastest runs",
        "target",
        "retrace",
    ]
    titles = {"vanilla": "vanilla", "smoothgrad": f"SmoothGrad-{SAMPLES}"}
    cells = [
        [
            WORKLOADS[name].title,
            titles[label],
            fmt_ms(c["engine"]),
            fmt_ms(c["reference"]),
            f"{c['ratio']:.2f}",
            f"{c['min ratio']:.2f}",
            f"≤ {TARGET:.2f}",
            "YES" if c["retrace"] else "no",
        ]
        for name, label, c in rows
    ]
    return table(header, cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--workload", choices=["cnn", "mobilenet", "all"], default="all")
    parser.add_argument(
        "--methods", nargs="+", choices=["vanilla", "smoothgrad"], default=["vanilla", "smoothgrad"]
    )
    parser.add_argument(
        "--markdown", help="write the table into section `bench_engine_jax` of this page"
    )
    args = parser.parse_args(argv)
    load_start = load_average()
    print(f"{environment()}, JAX {jax.__version__} ({keras.backend.backend()})")
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    fast, slow = (5, 1) if args.quick else (21, 7)
    failed = []
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for name in names:
        model = WORKLOADS[name].build()
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        probes = np.random.default_rng(1).random((NUM_PROBES, *shape)).astype(np.float32)
        x = jnp.asarray(probes)
        ref = JaxReference(model)
        print(f"== {name}")
        vanilla = Explainer(model, "vanilla", batch_size=NUM_PROBES)
        smooth = Explainer(
            model, SmoothGrad(Vanilla(), n_samples=SAMPLES, noise_level=LEVEL, seed=SEED)
        )
        for label, explainer, reference, repeats in (
            ("vanilla", vanilla, lambda r=ref, v=x: r.vanilla(v), fast),
            ("smoothgrad", smooth, lambda r=ref, v=x: r.smooth(v), slow),
        ):
            if label not in args.methods:
                continue
            rows.append((name, label, compare(label, explainer, probes, reference, repeats)))
            if rows[-1][2]["ratio"] > TARGET:
                failed.append(f"{name}/{label}")
    print("targets met" if not failed else f"over {TARGET}: {', '.join(failed)}")
    text = markdown(rows)
    print("\n" + text)
    if args.markdown:
        command = command_line("bench_engine_jax.py", argv)
        write_section(args.markdown, "bench_engine_jax", text, command, load_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
