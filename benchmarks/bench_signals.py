"""Which signal to trust: detection power per shortcut family, with false alarms.

What it measures
    For each shortcut family of `saliency_callback.data.datasets` (`cue=`) and each seed, two small
    CNNs train on 32x32 synthetic shapes (3 classes): a *shortcut* model, whose cue agrees with
    the class on 95% of training images, and its *clean* twin, whose cue is drawn at random
    (agreement 1/3). Two probe sets of 24 held-out images with exact object masks are watched
    side by side: one drawn like the training data (as a user's validation images would be),
    one balanced (the cue agrees on half of the probes, as in the shortcut demo).

    At every epoch end a recorder computes every signal the callback can log, with the
    package's own code (`Explainer`, `metrics`, `background`): mass in mask, pointing game and
    rank in mask for vanilla gradients, SmoothGrad (10 samples), integrated gradients (16
    steps) and Grad-CAM; the mask-free hotspot for each method; and the background tests' gap,
    flip rate and only-background accuracy. After training, test accuracy on images whose cue
    agrees vs disagrees with the class shows whether the shortcut model really relies on it.

    Per signal and family it prints:
    - AUC: how well the signal's final value separates shortcut from clean runs (1 = every
      shortcut run is on the shortcut side of every clean run; 0.5 = no separation);
    - fired: the share of shortcut runs on which a `ShortcutAlarm` with the signal's default
      threshold (below) fires by the third logged epoch, and the median first epoch it fires;
    - false: the share of clean runs on which that alarm fires at any epoch.

    Default thresholds were fixed before running, a priori, as the midpoint between what an
    object-reading and a background-reading model score, not tuned on these results:
    mass in mask, pointing game, rank in mask below chance (`relative_to="chance"`, 1.0);
    hotspot above 1.5 x its chance; gap above 0.25; flip rate above 0.5; reliance above 0.5
    (halfway from "follows neither" to "follows the background"); only-background accuracy
    above 2/3 (halfway from chance 1/3 to 1). Patience 1.

How to run
    python benchmarks/bench_signals.py            # 6 families x 3 seeds x 2 models
    python benchmarks/bench_signals.py --quick    # one family, one seed (a smoke test)
    python benchmarks/bench_signals.py --families patch frame --seeds 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from bench_detection import small_cnn  # the same CNN (this folder is sys.path[0])

import saliency_callback as sc
from saliency_callback.data.datasets import CUES
from saliency_callback.maps import metrics
from saliency_callback.shortcuts import background as bg

FAMILIES = CUES
METHODS = {
    "vanilla": sc.Vanilla(),
    "smoothgrad": sc.SmoothGrad(sc.Vanilla(), n_samples=10),
    "ig": sc.IntegratedGradients(steps=16),
    "gradcam": sc.GradCAM(),
}
NUM_CLASSES = 3
PROBE_SETS = {
    "train-like": "drawn like the training data (cue agreement as in training)",
    "balanced": "balanced (the cue agrees on half of them)",
}
SHORTCUT, CLEAN = 0.95, 1 / NUM_CLASSES


@dataclass(frozen=True)
class Signal:
    """A signal, the side on which it means "shortcut", and its default alarm."""

    name: str
    side: str  # "below" or "above"
    threshold: float
    relative_to_chance: bool = False

    def alarm(self, value: float, chance: float | None) -> bool:
        limit = self.threshold * (chance or np.nan) if self.relative_to_chance else self.threshold
        return bool(value < limit) if self.side == "below" else bool(value > limit)


def signals() -> list[Signal]:
    out = []
    for m in METHODS:
        out += [
            Signal(f"{m}/mass_in_mask", "below", 1.0, True),
            Signal(f"{m}/pointing_game", "below", 1.0, True),
            Signal(f"{m}/rank_in_mask", "below", 1.0, True),
            Signal(f"{m}/hotspot", "above", 1.5, True),
        ]
    return [
        *out,
        Signal("background/gap", "above", 0.25),
        Signal("background/flip_rate", "above", 0.5),
        Signal("background/reliance", "above", 0.5),
        Signal("background/only_bg_accuracy", "above", 2 / 3),
    ]


@dataclass
class RunRecord:
    family: str
    seed: int
    shortcut: bool
    values: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    acc_agree: float = np.nan
    acc_disagree: float = np.nan


class Recorder(keras.callbacks.Callback):
    """Computes every signal at each epoch end with the package's own code, for each probe set
    (recorded as `"<probe set>:<signal>"`)."""

    def __init__(self, probe_sets: dict[str, Any], record: RunRecord) -> None:
        super().__init__()
        self.probe_sets, self.record = probe_sets, record
        self.explainers: dict[str, sc.Explainer] = {}
        self.tests: dict[str, bg.BackgroundTest] = {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.explainers = {m: sc.Explainer(self.model, method) for m, method in METHODS.items()}
        self.tests = {
            name: bg.BackgroundTest.build(p.images, p.masks, np.asarray(p.labels))
            for name, p in self.probe_sets.items()
        }

    def put(self, name: str, value: float, chance: float | None = None) -> None:
        self.record.values.setdefault(name, []).append((float(value), chance))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for set_name, probes in self.probe_sets.items():
            masks = probes.masks
            area = float(np.nanmean(metrics.chance_level(masks)))
            outputs = None
            for m, explainer in self.explainers.items():
                result = explainer(probes.images)
                outputs, raw = result.outputs, result.reduced
                for metric in (metrics.mass_in_mask, metrics.pointing_game, metrics.rank_in_mask):
                    value = np.nanmean(metric(raw, masks))
                    self.put(f"{set_name}:{m}/{metric.__name__}", value, area)
                self.put(f"{set_name}:{m}/hotspot", *metrics.hotspot(raw))
            test = self.tests[set_name]
            assert outputs is not None
            _, variant_outputs = self.explainers["vanilla"].predict(test.batch)
            values, _ = bg.score(test, outputs, test.split(variant_outputs))
            for name in ("gap", "flip_rate", "reliance", "only_bg_accuracy"):
                self.put(f"{set_name}:background/{name}", values[name])


def data(family: str, n: int, agreement: float, seed: int, size: int) -> Any:
    return sc.make_shortcut_data(
        n, image_size=size, num_classes=NUM_CLASSES, agreement=agreement, seed=seed, cue=family
    )


def run_one(family: str, seed: int, shortcut: bool, args: argparse.Namespace) -> RunRecord:
    agreement = SHORTCUT if shortcut else CLEAN
    train = data(family, args.n_train, agreement, seed, args.size)
    probe_sets = {  # like the training data (a user's validation images), and balanced
        "train-like": data(family, args.probes, agreement, seed + 1000, args.size),
        "balanced": data(family, args.probes, 0.5, seed + 3000, args.size),
    }
    test = data(family, 600, 0.5, seed + 2000, args.size)  # half agree, half disagree
    record = RunRecord(family, seed, shortcut)
    model = small_cnn(args.size, seed)
    model.fit(
        train.images,
        train.labels,
        epochs=args.epochs,
        batch_size=64,
        verbose=0,
        callbacks=[Recorder(probe_sets, record)],
    )
    correct = model.predict(test.images, verbose=0, batch_size=256).argmax(1) == test.labels
    record.acc_agree = float(correct[test.cue_agrees].mean())
    record.acc_disagree = float(correct[~test.cue_agrees].mean())
    return record


def auc(positive: list[float], negative: list[float]) -> float:
    """Mann-Whitney AUC: P(positive > negative), ties counting one half."""
    p, n = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    valid = np.isfinite(p) & np.isfinite(n)
    if not valid.any():
        return float("nan")
    return float(((p > n) + 0.5 * (p == n))[valid].mean())


def first_alarm(signal: Signal, series: list[tuple[float, float | None]]) -> int | None:
    """The first epoch (1-based) at which the default alarm fires."""
    for epoch, (value, chance) in enumerate(series, start=1):
        if np.isfinite(value) and signal.alarm(value, chance):
            return epoch
    return None


def summarise(
    records: list[RunRecord], families: list[str], probe_set: str
) -> dict[tuple[str, str], dict]:
    table: dict[tuple[str, str], dict] = {}
    for family in families:
        runs = [r for r in records if r.family == family]
        for signal in signals():
            sign = -1.0 if signal.side == "below" else 1.0

            key = f"{probe_set}:{signal.name}"

            def final(r: RunRecord, signal: Signal = signal, sign: float = sign) -> float:
                value, chance = r.values[f"{probe_set}:{signal.name}"][-1]
                if signal.relative_to_chance and chance:
                    value = value / chance
                return sign * value

            pos = [final(r) for r in runs if r.shortcut]
            neg = [final(r) for r in runs if not r.shortcut]
            fires = [first_alarm(signal, r.values[key]) for r in runs if r.shortcut]
            false = [first_alarm(signal, r.values[key]) for r in runs if not r.shortcut]
            fired_epochs = [f for f in fires if f is not None]
            table[(family, signal.name)] = {
                "auc": auc(pos, neg),
                "by3": float(np.mean([f is not None and f <= 3 for f in fires])),
                "median": float(np.median(fired_epochs)) if fired_epochs else float("nan"),
                "false": float(np.mean([f is not None for f in false])),
            }
    return table


def print_tables(records: list[RunRecord], families: list[str]) -> None:
    print("\nDid the shortcut models use the cue? Test accuracy, cue agrees / disagrees:\n")
    print("| family | shortcut models | clean models |\n|---|---|---|")
    for family in families:
        cells = []
        for shortcut in (True, False):
            rs = [r for r in records if r.family == family and r.shortcut == shortcut]
            agree = np.mean([r.acc_agree for r in rs])
            disagree = np.mean([r.acc_disagree for r in rs])
            cells.append(f"{agree:.2f} / {disagree:.2f}")
        print(f"| {family} | {cells[0]} | {cells[1]} |")
    for probe_set in PROBE_SETS:
        table = summarise(records, families, probe_set)
        print(
            f"\n**Probes {PROBE_SETS[probe_set]}.** Per signal and family: AUC (final value, "
            "shortcut vs clean) · share of shortcut runs whose default alarm fires by epoch 3 "
            "(median first epoch) · false alarms on clean runs\n"
        )
        print("| signal | " + " | ".join(families) + " |")
        print("|---|" + "---|" * len(families))
        for signal in signals():
            cells = []
            for family in families:
                c = table[(family, signal.name)]
                median = "-" if np.isnan(c["median"]) else f"{c['median']:.0f}"
                cells.append(f"{c['auc']:.2f} · {c['by3']:.0%} ({median}) · {c['false']:.0%}")
            print(f"| {signal.name} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one family, one seed, 4 epochs")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--probes", type=int, default=24)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args(argv)
    if args.quick:
        args.families, args.seeds, args.epochs, args.n_train = ["background_color"], 1, 4, 1500
    start = time.perf_counter()
    print(
        f"TensorFlow/Keras {keras.__version__}, {os.cpu_count()} CPUs; {len(args.families)} "
        f"families x {args.seeds} seeds x 2 models, {args.epochs} epochs of {args.n_train} "
        f"images {args.size}x{args.size}, {args.probes} probes",
        flush=True,
    )
    records = []
    for family in args.families:
        for seed in range(args.seeds):
            for shortcut in (True, False):
                t = time.perf_counter()
                record = run_one(family, seed, shortcut, args)
                records.append(record)
                print(
                    f"  {family:18s} seed {seed} {'shortcut' if shortcut else 'clean   '} "
                    f"acc agree {record.acc_agree:.2f} disagree {record.acc_disagree:.2f} "
                    f"({time.perf_counter() - t:.0f} s)",
                    flush=True,
                )
    print_tables(records, args.families)
    print(f"\nTotal time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
