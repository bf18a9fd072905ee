"""Map fidelity against cost: how many SmoothGrad samples the default maps need (#29).

For each bed (a shortcut family of the detection benchmark with a small CNN trained on it for a
few epochs, one photographic bed, and MobileNetV2 alpha 0.35 at 64 px) the probes' maps of every
candidate are compared with a reference, SmoothGrad with `--reference` samples (256) drawn from
another seed, all on the channel-reduced maps the callback measures (`max_abs`, unnormalised):

- **Candidates**: vanilla gradients, alone and with the Gaussian display blur (sigma 1 and 2
  px); SmoothGrad (noise level 0.15) with N = 4, 8, 10, 16, 25, 50 i.i.d. samples, and with
  N/2 antithetic pairs (eps, -eps) for even N.
- **Fidelity**, the mean over the probes: Spearman rank correlation with the reference; the IoU
  of the top 20% pixels; SSIM (scikit-image, maps min-max scaled); the mean `mass_in_mask`'s
  distance to the reference's.
- **Stability**: Spearman between the maps of the same model from two noise seeds (what an
  epoch-to-epoch comparison sees as change when the noise is drawn anew).
- **Epoch change**: the error, against the reference, of how much each probe's map changed
  between the last two epochs (1 - Spearman), with the noise fixed across epochs (the same
  seed at both) and drawn anew (another seed).
- **Cost**: gradients per probe, and the median wall time per probe of one `Explainer` call
  (warm) measured in the same run, with its ratio to vanilla gradients.

The thresholds were fixed before the first run: Spearman >= 0.9, IoU >= 0.8 and the mass within
0.02, on every bed. The cheapest candidate meeting them everywhere is named at the end.

    python benchmarks/bench_maps.py [--quick] [--markdown docs/maps.md]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf
from _markdown import command_line, load_average, table, write_section
from bench_detection import data, network
from scipy import ndimage, stats

from saliency_callback.maps import metrics
from saliency_callback.maps.engine import Explainer
from saliency_callback.maps.methods import Method, SmoothGrad, Vanilla

tf.get_logger().setLevel("ERROR")  # each candidate's explainer traces its own functions

SPEARMAN_MIN, IOU_MIN, MASS_TOL = 0.9, 0.8, 0.02  # fixed before the first run
TOP = 0.2
SAMPLES = (4, 8, 10, 16, 25, 50)
BLURS = (1.0, 2.0)
REFERENCE_SEED = 1000  # the reference's noise is never a candidate's
OTHER_SEED = 1


@dataclass(frozen=True)
class Candidate:
    label: str
    make: Callable[[int], Method]  # seed -> method
    blur: float = 0.0
    drawn: bool = True  # whether it draws noise (vanilla does not)


def candidates(samples: tuple[int, ...], reference: int) -> list[Candidate]:
    out = [Candidate("vanilla", lambda s: Vanilla(), drawn=False)]
    out += [Candidate(f"vanilla + blur {b:g}", lambda s: Vanilla(), b, False) for b in BLURS]
    for n in samples:
        out.append(Candidate(f"SmoothGrad-{n}", lambda s, n=n: SmoothGrad(n_samples=n, seed=s)))
        if n % 2 == 0:
            out.append(
                Candidate(
                    f"SmoothGrad-{n} antithetic",
                    lambda s, n=n: SmoothGrad(n_samples=n, seed=s, antithetic=True),
                )
            )
    # The reference against itself (identical by construction) and against another draw (the
    # reference's own noise floor).
    out.append(Candidate(f"SmoothGrad-{reference} (reference)", lambda s: _reference(reference)))
    out.append(
        Candidate(
            f"SmoothGrad-{reference}, other draw",
            lambda s: SmoothGrad(n_samples=reference, seed=REFERENCE_SEED + 1 + s),
        )
    )
    return out


def _reference(n: int) -> SmoothGrad:
    return SmoothGrad(n_samples=n, seed=REFERENCE_SEED)


# -- the metrics (per probe) ------------------------------------------------------------------


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps `(N, H, W)` (average ranks for ties)."""
    ra = stats.rankdata(a.reshape(len(a), -1), axis=1)
    rb = stats.rankdata(b.reshape(len(b), -1), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    return np.divide((ra * rb).sum(axis=1), den, out=np.ones(len(a)), where=den > 0)


def top_iou(a: np.ndarray, b: np.ndarray, top: float = TOP) -> np.ndarray:
    """IoU of each pair of maps' `top` share of highest pixels."""
    fa, fb = a.reshape(len(a), -1), b.reshape(len(b), -1)
    k = max(1, math.ceil(top * fa.shape[1]))
    out = np.empty(len(a))
    for i in range(len(a)):
        sa = set(np.argsort(-fa[i], kind="stable")[:k].tolist())
        sb = set(np.argsort(-fb[i], kind="stable")[:k].tolist())
        out[i] = len(sa & sb) / len(sa | sb)
    return out


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM (scikit-image, 7x7 window) of each pair of maps, each min-max scaled to [0, 1]."""
    from skimage.metrics import structural_similarity

    def scaled(m: np.ndarray) -> np.ndarray:
        lo, span = m.min(), m.max() - m.min()
        return (m - lo) / span if span > 0 else np.zeros_like(m)

    return np.array(
        [
            structural_similarity(scaled(x), scaled(y), data_range=1.0)
            for x, y in zip(a, b, strict=True)
        ]
    )


def mean_mass(maps: np.ndarray, masks: np.ndarray) -> float:
    return float(np.nanmean(metrics.mass_in_mask(maps, masks)))


# -- the beds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bed:
    family: str
    arch: str  # "cnn" or "mobilenetv2"
    size: int

    @property
    def name(self) -> str:
        model = "small CNN" if self.arch == "cnn" else "MobileNetV2 0.35"
        return f"{self.family}, {model}, {self.size} px"


def train(bed: Bed, args: argparse.Namespace) -> tuple[keras.Model, list[np.ndarray], object]:
    """The model trained on the bed, the weights of its last two epochs, and the probes."""
    train_set = data(bed.family, args.n_train, 0.95, seed=0, size=bed.size)
    probes = data(bed.family, args.probes, 0.95, seed=7, size=bed.size)
    model = network(bed.arch, train_set.images.shape[1], seed=0)
    epochs = args.epochs if bed.arch == "cnn" else args.arch_epochs
    model.fit(train_set.images, train_set.labels, epochs=epochs - 1, batch_size=64, verbose=0)
    previous = model.get_weights()
    model.fit(train_set.images, train_set.labels, epochs=1, batch_size=64, verbose=0)
    return model, [previous, model.get_weights()], probes


def maps_of(model: keras.Model, method: Method, images: np.ndarray, blur: float) -> np.ndarray:
    explainer = Explainer(model, method, normalize=None)
    out = explainer(images).maps.astype(np.float64)
    return ndimage.gaussian_filter(out, (0, blur, blur), mode="reflect") if blur else out


def cost_ms(model: keras.Model, method: Method, images: np.ndarray, repeats: int) -> float:
    """Median wall ms per probe of a warm `Explainer` call."""
    explainer = Explainer(model, method, normalize=None)
    explainer(images)  # compiles
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        explainer(images)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)) / len(images)


def evaluate_bed(bed: Bed, args: argparse.Namespace) -> list[dict[str, object]]:
    t0 = time.perf_counter()
    model, (previous, final), probes = train(bed, args)
    x, masks = probes.images, probes.masks

    def at(weights: list[np.ndarray], method: Method, blur: float = 0.0) -> np.ndarray:
        model.set_weights(weights)
        return maps_of(model, method, x, blur)

    ref = at(final, _reference(args.reference))
    ref_prev = at(previous, _reference(args.reference))
    true_change = 1 - spearman(ref_prev, ref)
    ref_mass = mean_mass(ref, masks)
    rows = []
    base_ms = None
    for cand in candidates(tuple(args.samples), args.reference):
        method = cand.make(0)
        final_0 = at(final, method, cand.blur)
        final_1 = at(final, cand.make(OTHER_SEED), cand.blur) if cand.drawn else final_0
        prev_0 = at(previous, method, cand.blur)
        model.set_weights(final)
        ms = cost_ms(
            model,
            method,
            x,
            1 if cand.label.startswith("SmoothGrad-" + str(args.reference)) else args.repeats,
        )
        base_ms = ms if cand.label == "vanilla" else base_ms
        rho, iou = spearman(final_0, ref).mean(), top_iou(final_0, ref).mean()
        mass = abs(mean_mass(final_0, masks) - ref_mass)
        fixed = np.abs(1 - spearman(prev_0, final_0) - true_change).mean()
        anew = np.abs(1 - spearman(prev_0, final_1) - true_change).mean()
        rows.append(
            {
                "candidate": cand.label,
                "gradients": method.num_points,
                "ms": ms,
                "ratio": ms / base_ms if base_ms else float("nan"),
                "spearman": float(rho),
                "iou": float(iou),
                "ssim": float(ssim(final_0, ref).mean()),
                "mass": mass,
                "stability": float(spearman(final_0, final_1).mean()),
                "fixed": float(fixed),
                "anew": float(anew),
                "passes": bool(rho >= SPEARMAN_MIN and iou >= IOU_MIN and mass <= MASS_TOL),
            }
        )
    print(
        f"  {bed.name}: reference mass {ref_mass:.3f}, ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    return rows


# -- the report -------------------------------------------------------------------------------

HEADER = (
    "candidate",
    "gradients / probe",
    "ms / probe",
    "x vanilla",
    "Spearman",
    "top-20% IoU",
    "SSIM",
    "|d mass|",
    "stability",
    "change err, fixed",
    "change err, anew",
    "meets",
)


def bed_table(rows: list[dict[str, object]]) -> str:
    return table(
        HEADER,
        [
            (
                r["candidate"],
                r["gradients"],
                f"{r['ms']:.2f}",
                f"{r['ratio']:.1f}",
                f"{r['spearman']:.3f}",
                f"{r['iou']:.3f}",
                f"{r['ssim']:.3f}",
                f"{r['mass']:.3f}",
                f"{r['stability']:.3f}",
                f"{r['fixed']:.3f}",
                f"{r['anew']:.3f}",
                "yes" if r["passes"] else "no",
            )
            for r in rows
        ],
    )


def choose(results: dict[str, list[dict[str, object]]], reference: int) -> str | None:
    """The cheapest candidate (fewest gradients, then ms) meeting the thresholds on every bed."""
    labels = [r["candidate"] for r in next(iter(results.values()))]
    eligible = []
    for i, label in enumerate(labels):
        if str(label).startswith(f"SmoothGrad-{reference}"):
            continue
        rows = [bed_rows[i] for bed_rows in results.values()]
        if all(r["passes"] for r in rows):
            cost = (int(rows[0]["gradients"]), float(np.mean([r["ms"] for r in rows])))
            eligible.append((cost, str(label)))
    return min(eligible)[1] if eligible else None


def summary_table(results: dict[str, list[dict[str, object]]]) -> str:
    labels = [r["candidate"] for r in next(iter(results.values()))]
    out = []
    for i, label in enumerate(labels):
        rows = [bed_rows[i] for bed_rows in results.values()]
        out.append(
            (
                label,
                rows[0]["gradients"],
                f"{np.mean([r['ratio'] for r in rows]):.1f}",
                f"{min(r['spearman'] for r in rows):.3f}",
                f"{min(r['iou'] for r in rows):.3f}",
                f"{max(r['mass'] for r in rows):.3f}",
                f"{min(r['stability'] for r in rows):.3f}",
                f"{sum(bool(r['passes']) for r in rows)}/{len(rows)}",
            )
        )
    return table(
        (
            "candidate",
            "gradients / probe",
            "x vanilla (mean)",
            "worst Spearman",
            "worst IoU",
            "worst |d mass|",
            "worst stability",
            "beds met",
        ),
        out,
    )


def beds(args: argparse.Namespace) -> list[Bed]:
    out = [Bed(f, "cnn", 32 if f in ("distractor", "photo") else args.size) for f in args.families]
    if args.mobilenet:
        out.append(Bed("photo", "mobilenetv2", 64))
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    from bench_detection import FAMILIES

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small bed: a smoke test")
    parser.add_argument(
        "--families",
        nargs="+",
        choices=FAMILIES,
        default=["background_color", "background_texture", "patch", "frame", "blur", "photo"],
    )
    parser.add_argument("--no-mobilenet", dest="mobilenet", action="store_false")
    parser.add_argument("--samples", nargs="+", type=int, default=list(SAMPLES))
    parser.add_argument("--reference", type=int, default=256, help="the reference's samples")
    parser.add_argument("--probes", type=int, default=32)
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the small CNNs")
    parser.add_argument("--arch-epochs", type=int, default=3, help="epochs of MobileNetV2")
    parser.add_argument("--size", type=int, default=24, help="synthetic image side")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed calls per candidate (the reference: 1)"
    )
    parser.add_argument("--markdown", type=str, help="write the tables into this page")
    args = parser.parse_args(argv)
    if args.quick:
        args.families, args.mobilenet, args.samples = ["background_color"], False, [4, 10]
        args.reference, args.probes, args.n_train, args.epochs = 32, 8, 256, 2
        args.repeats = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    start, load_start = time.perf_counter(), load_average()
    print(
        f"Keras {keras.__version__}, {os.cpu_count()} CPUs, load average {load_start:.1f}; "
        f"reference SmoothGrad-{args.reference}, {args.probes} probes",
        flush=True,
    )
    results = {}
    for bed in beds(args):
        results[bed.name] = evaluate_bed(bed, args)
        print(bed_table(results[bed.name]), flush=True)  # kept in the log if a later bed fails
    chosen = choose(results, args.reference)
    parts = [
        f"Thresholds (fixed before the run): Spearman >= {SPEARMAN_MIN}, top-20% IoU >= "
        f"{IOU_MIN}, mean mass in mask within {MASS_TOL} of the reference's; reference "
        f"SmoothGrad-{args.reference} (another seed); {args.probes} probes per bed.\n",
        "### Every bed\n",
        summary_table(results),
        f"Cheapest candidate meeting the thresholds on every bed: **{chosen or 'none'}**.\n",
    ]
    for name, rows in results.items():
        parts += [f"### {name}\n", bed_table(rows)]
    markdown = "\n".join(parts)
    print("\n" + markdown)
    if args.markdown:
        command = command_line("bench_maps.py", argv)
        write_section(args.markdown, "bench_maps", markdown, command, load_start)
    print(f"Total time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
