"""The `--memory` mode of `bench_engine.py`: the peak resident memory of SmoothGrad (50
samples) over 64 probes of 224x224x3, on the small CNN and/or MobileNetV2."""

from __future__ import annotations

import resource
from collections.abc import Callable

import keras
import numpy as np
from _common import (
    mobilenet,
    small_cnn,
    timed,
)

from saliency_callback import (
    Explainer,
    SmoothGrad,
    Vanilla,
)

# -- memory -----------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def bench_memory(workload: str) -> None:
    n, samples, batch_size, size = 64, 50, 32, 224
    models: list[tuple[str, Callable[[], keras.Model]]] = []
    if workload in ("cnn", "all"):
        models.append(("small strided CNN", lambda: small_cnn((size, size, 3), stem_stride=2)))
    if workload in ("mobilenet", "all"):
        models.append(("MobileNetV2", lambda: mobilenet(size)))
    naive_inputs = n * samples * size * size * 3 * 4 / 2**30
    print(
        f"SmoothGrad, {samples} samples, {n} probes of {size}x{size}x3, batch_size={batch_size}: "
        f"{n * samples} gradient evaluations.\nMaterialising all noisy copies at once would need "
        f"{naive_inputs:.2f} GiB for the inputs alone, plus every layer's activations for the "
        "backward pass."
    )
    print(f"peak RSS at start: {peak_rss_mib():8.0f} MiB")
    probes = np.random.default_rng(1).random((n, size, size, 3)).astype(np.float32)
    method = SmoothGrad(Vanilla(), n_samples=samples)
    for name, build in models:
        model = build()
        before = peak_rss_mib()
        print(f"-- {name}: peak RSS with model and probes: {before:8.0f} MiB")
        explainer = Explainer(model, method, batch_size=batch_size)
        calls = 2 if name != "MobileNetV2" else 1
        for call in range(calls):
            ms, _, result = timed(lambda e=explainer: e(probes))
            print(
                f"   call {call + 1}: {ms / 1e3:6.1f} s, maps {result.maps.shape}, "
                f"peak RSS {peak_rss_mib():8.0f} MiB (+{peak_rss_mib() - before:.0f} MiB), "
                f"tracing count {explainer.tracing_count}"
            )
    peak = peak_rss_mib() / 1024
    verdict = "PASS" if peak < 4.0 else "FAIL"
    print(f"peak RSS after: {peak:.2f} GiB  (limit for this check: 4 GiB, vs 24 GB) -> {verdict}")
