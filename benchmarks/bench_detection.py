"""Which signal to trust: does the alarm fire on the shortcuts that cost accuracy?

What it measures
    For each shortcut family of `saliency_callback.data.datasets` (`cue=`), each cue share of the
    dose axis (`--doses`: the share of training images whose cue agrees with the class; 1/3 is
    chance, a clean model) and each seed, a small CNN trains on synthetic shapes (3
    classes. Its weights are saved after every epoch into a cache (`--cache`), so training
    runs once and every decision rule, probe count and mask kind is evaluated offline from the
    saved weights; a second run with the same cache trains nothing.

    Ground truth, measured without the library: the model's **harm**, its test accuracy on
    images whose cue agrees with the class minus on images whose cue disagrees (600 test
    images, half of each), after the last epoch.

    The alarm's view: a pool of 64 held-out probes drawn like the training data (as a user's
    validation images would be), with labels, split into disjoint probe sets of 8, 16, 32 and
    64. Each probe set gets the library's background tests (`background.BackgroundTest`,
    `background.score`) at every epoch, with four kinds of object masks: the exact masks, their
    bounding boxes, loose boxes (grown by a quarter of their size on each side: background
    inside) and shifted boxes (moved by up to a quarter of their size: part of the object
    outside, part of the background inside); and, when
    `saliency_callback.shortcuts.proposals` exists, the mask-free proposals (`proposed`) and
    their boxes.

    Decision rules (all fixed before the benchmark ran, none tuned on it):
    - `harm_low > 0.05` (the default `ShortcutAlarm()`): the one-sided 95% lower bound of the
      estimated harm (`calibration.harm_estimate`) above 0.05, the issue's "harmless";
    - `reliance > 0.5` (the former default), `flip_rate > 0.5`, `gap > 0.25`;
    - `bg_gap > 0.25`: `mixed_same_accuracy - mixed_rand_accuracy` (the Backgrounds Challenge's
      BG-Gap) above a fixed 0.25.

    Per rule it reports, for models with harm >= 0.25, the share that fire by the third logged
    epoch (per family), and for models with harm < 0.05 the share that fire at any epoch. The
    harm is also measured after every epoch, and a table compares the default alarm with it:
    does it fire within three epochs of the model becoming harmful, and does it fire on a
    harmless model at an epoch where that model was harmless?

How to run
    python benchmarks/bench_detection.py --cache /tmp/detection-cache \\
        --markdown docs/detection.md --plot docs/images/detection.png
    (With --markdown, a page holding the markers `<!-- bench_detection: begin -->` and
    `<!-- bench_detection: end -->` gets the tables between them; the rest is left alone.)
    python benchmarks/bench_detection.py --quick    # two models, a smoke test (the test suite)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from _detection_report import (  # noqa: F401 (re-exported: the tests read them here)
    BEGIN,
    DEFAULT_PROBES,
    DEFAULT_RULE,
    END,
    MASK_KINDS,
    PHOTO_KINDS,
    PROPOSED_KINDS,
    READING_RULE,
    STREAK_RULE,
    TWO_SIDED_RULE,
    Model,
    Values,
    auc,
    counts_for,
    early_score,
    fires,
    report,
)
from _markdown import command_line, load_average
from _photo_beds import PHOTO_CUES, make_photo_data
from scipy import stats

import saliency_callback as sc
from saliency_callback.data.datasets import CUES
from saliency_callback.maps import metrics
from saliency_callback.shortcuts import background as bg
from saliency_callback.shortcuts import calibration

NUM_CLASSES = 3
CHANCE = 1 / NUM_CLASSES
DOSES = (CHANCE, 0.6, 0.75, 0.9, 0.95, 0.99)
DOSE_FAMILIES = ("background_color", "patch", "distractor", *PHOTO_CUES)
FAMILIES = (*CUES, *PHOTO_CUES)
DISTRACTOR_SIZE = 32  # the distractor family needs 32x32 images
PHOTO_SIZE = 32  # photographic beds: 32x32 for the small CNN
ARCH_SIZE = {"mobilenetv2": 64}  # the keras.applications cell: its own size
POOL = 64
PROBE_COUNTS = (8, 16, 32, 64)


def data(family: str, n: int, agreement: float, seed: int, size: int, bed_seed: int = 0) -> Any:
    """`n` images of a family; a photographic family draws its bed (characters, photographs)
    from `bed_seed`, the model's seed, so one model's training, test and probes share it."""
    if family in PHOTO_CUES:
        return make_photo_data(
            n,
            max(size, PHOTO_SIZE),
            NUM_CLASSES,
            agreement,
            cue=family,
            bed_seed=bed_seed,
            seed=seed,
        )
    if family == "distractor":
        size = max(size, DISTRACTOR_SIZE)
    return sc.make_shortcut_data(
        n, image_size=size, num_classes=NUM_CLASSES, agreement=agreement, seed=seed, cue=family
    )


def network(arch: str, size: int, seed: int) -> keras.Model:
    """The benchmark's small CNN, or a `keras.applications` model from random weights."""
    if arch == "cnn":
        return small_cnn(size, seed)
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=0.35, weights=None, classes=NUM_CLASSES
    )
    for layer in model.layers:  # Keras's 0.999 leaves the moving statistics far behind
        if isinstance(layer, keras.layers.BatchNormalization):  # the weights in a short fit
            layer.momentum = 0.9
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    return model


def epochs_of(m: Model, args: argparse.Namespace) -> int:
    """Photographic families train for `--photo-epochs` (a whole fit's false alarms), the
    keras.applications cell for `--arch-epochs`."""
    if m.arch != "cnn":
        return args.arch_epochs
    return args.photo_epochs if m.family in PHOTO_CUES else args.epochs


def small_cnn(size: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = inp
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    return model


def harm_of(model: keras.Model, test: Any) -> tuple[float, float]:
    """Test accuracy where the cue agrees, and where it disagrees (no library code)."""
    correct = model.predict(test.images, verbose=0, batch_size=300).argmax(1) == test.labels
    return float(correct[test.cue_agrees].mean()), float(correct[~test.cue_agrees].mean())


class _SaveEachEpoch(keras.callbacks.Callback):
    def __init__(self, folder: Path, test: Any, record: Model) -> None:
        super().__init__()
        self.folder, self.test, self.record = folder, test, record

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.model.save_weights(self.folder / f"epoch{epoch + 1}.weights.h5")
        agree, disagree = harm_of(self.model, self.test)
        self.record.harm_by_epoch.append(agree - disagree)
        self.record.acc_agree, self.record.acc_disagree = agree, disagree
        self.record.harm = agree - disagree


def train(model_spec: Model, cache: Path, args: argparse.Namespace) -> Model:
    """Trains one model (or reads it from the cache) and returns it with its harm."""
    folder = cache / model_spec.key
    done = folder / "model.json"
    if done.exists():
        return Model(**json.loads(done.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    s, size = model_spec.seed, ARCH_SIZE.get(model_spec.arch, args.size)
    trainset = data(model_spec.family, args.n_train, model_spec.dose, s, size, s)
    test = data(model_spec.family, 600, 0.5, s + 2000, size, s)
    model = network(model_spec.arch, trainset.images.shape[1], s)
    model.fit(
        trainset.images,
        trainset.labels,
        epochs=epochs_of(model_spec, args),
        batch_size=64,
        verbose=0,
        callbacks=[_SaveEachEpoch(folder, test, model_spec)],
    )
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(model_spec.__dict__))
    os.replace(tmp, done)  # the model counts as cached only once every epoch is saved
    return model_spec


def grid(args: argparse.Namespace) -> list[Model]:
    """Seeds outermost: a run cut short still covers every cell evenly."""
    specs = []
    for seed in range(args.seeds):
        for family in args.families:
            doses = args.doses if family in args.dose_families else (CHANCE, 0.95)
            specs += [Model(family, float(dose), seed) for dose in doses]
    for seed in range(args.seeds):  # the costlier keras.applications cell after the others
        specs += [
            Model(family, float(dose), seed, arch=arch)
            for arch in args.archs
            for family in args.arch_families
            for dose in (CHANCE, 0.95)
        ]
    return specs


# -- evaluation, offline from the saved weights -------------------------------------------------


def boxes_of(masks: np.ndarray) -> np.ndarray:
    """`(N, 4)` bounding boxes `(x0, y0, x1, y1)`, end excluded, of bool masks `(N, H, W)`."""
    out = np.zeros((len(masks), 4), np.int64)
    for i, m in enumerate(masks):
        ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        out[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1) if len(ys) else (0, 0, 0, 0)
    return out


def imperfect_boxes(boxes: np.ndarray, size: int, kind: str, seed: int) -> np.ndarray:
    """`loose box`: grown by a quarter of its width/height on each side (background inside);
    `shifted box`: moved by up to a quarter of its width/height (part of the object outside).
    Clipped to the image."""
    b = boxes.astype(np.float64)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    if kind == "loose box":
        grow = np.stack([-w, -h, w, h], 1) * 0.25
        b = b + grow
    else:
        rng = np.random.default_rng(seed)
        dx = rng.uniform(-0.25, 0.25, len(b)) * w
        dy = rng.uniform(-0.25, 0.25, len(b)) * h
        b = b + np.stack([dx, dy, dx, dy], 1)
    return np.clip(np.round(b), 0, size).astype(np.int64)


def pool_masks(pool: Any, seed: int) -> dict[str, tuple[np.ndarray, bool]]:
    """Each mask kind's masks for the probe pool, and whether its tests use the labels
    (`"mask, resample fill"`: the exact masks, the object's hole filled the former way)."""
    size = pool.images.shape[1]
    shape = pool.masks.shape
    boxes = boxes_of(pool.masks)
    kinds = {
        "mask": (pool.masks, True),
        "box": (metrics.masks_from_boxes(boxes, shape), True),
        "loose box": (
            metrics.masks_from_boxes(imperfect_boxes(boxes, size, "loose box", seed), shape),
            True,
        ),
        "shifted box": (
            metrics.masks_from_boxes(imperfect_boxes(boxes, size, "shifted box", seed), shape),
            True,
        ),
        "mask, no labels": (pool.masks, False),
        "mask, resample fill": (pool.masks, True),
    }
    if pool.cue in PHOTO_CUES:
        kinds = {k: v for k, v in kinds.items() if k in PHOTO_KINDS}
    proposals = _proposals()
    if proposals is not None:
        proposed = proposals.propose_masks(pool.images)
        found = ~np.asarray(proposed.fallback, bool)[:, None, None]  # fallbacks left out
        kinds["proposed"] = (np.asarray(proposed.masks, bool) & found, True)
        kinds["proposed box"] = (metrics.masks_from_boxes(proposed.boxes, shape) & found, True)
    return kinds


def _proposals() -> Any:
    try:
        from saliency_callback.shortcuts import proposals
    except ImportError:
        return None
    return proposals


def bonett_price_low(d: np.ndarray, alpha: float = 0.05) -> float:
    """One-sided lower bound of the mean of paired right/wrong differences `d` in {-1, 0, 1}
    (NaN: left out): the adjusted Wald interval of Bonett and Price (2012) for a difference of
    paired proportions, which stays informative where a t-interval collapses (all terms equal)."""
    d = np.asarray(d, np.float64)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return float("nan")
    up, down = (float((d > 0).sum()) + 1) / (n + 2), (float((d < 0).sum()) + 1) / (n + 2)
    se = np.sqrt(max(up + down - (up - down) ** 2, 0.0) / (n + 2))
    return float(max(up - down - stats.norm.ppf(1 - alpha) * se, -1.0))


def reading_harm(test: Any, original: np.ndarray, variants: dict[str, np.ndarray]) -> tuple:
    """The estimate before issue #26, for comparison: each probe's two backgrounds sorted by
    what the model predicts from each background alone (`only_bg`), probes whose two
    backgrounds read alike left out. (estimate, lower bound)."""
    y = test.classes if test.classes is not None else bg.predicted_classes(original)
    says = bg.predicted_classes(variants["only_bg"])
    first, second = test.partners["mixed_same"], test.partners["mixed_rand"]
    both = test.valid & (first >= 0) & (second >= 0)
    d = calibration.paired_differences(
        says[np.where(both, first, 0)] == y,
        says[np.where(both, second, 0)] == y,
        bg.class_probability(variants["mixed_same"], y),
        bg.class_probability(variants["mixed_rand"], y),
    )
    d[~both] = np.nan
    estimate = calibration.harm_estimate(d)
    return estimate.harm, estimate.low


def accuracy_harm(test: Any, original: np.ndarray, variants: dict[str, np.ndarray]) -> tuple:
    """The default estimate with each probe's term right/wrong instead of a probability:
    (estimate, lower bound). Same swaps, same sorting (`background.swap_agreement`)."""
    if not {"mixed_rand", "mixed_same"} <= set(variants):
        return float("nan"), float("nan")
    y, same_agrees, rand_agrees, both = bg.swap_agreement(test, original)
    d = calibration.paired_differences(
        same_agrees,
        rand_agrees,
        (bg.predicted_classes(variants["mixed_same"]) == y).astype(np.float64),
        (bg.predicted_classes(variants["mixed_rand"]) == y).astype(np.float64),
    )
    d[~both] = np.nan
    finite = d[np.isfinite(d)]
    return (float(finite.mean()) if len(finite) else float("nan")), bonett_price_low(d)


EVAL_VERSION = 4  # bump when the background tests change: cached evaluations are redone


def evaluate_model(
    m: Model, cache: Path, args: argparse.Namespace, nets: dict[tuple[str, int], keras.Model]
) -> dict[tuple[str, str, int, int], list[Values]]:
    """One model's background-test scalars per (mask kind, probe count, probe set), per epoch;
    cached per mask kind in the model's folder."""
    size = ARCH_SIZE.get(m.arch, args.size)
    pool = data(m.family, args.pool, m.dose, m.seed + 1000, size, m.seed)
    files = {}
    out: dict[tuple[str, str, int, int], list[Values]] = {}
    todo = {}
    for kind, masks in pool_masks(pool, m.seed).items():
        name = kind.replace(" ", "_").replace(",", "")
        counts = "-".join(map(str, counts_for(kind, args)))
        if kind in PROPOSED_KINDS:  # the proposals themselves key the cache: a change of
            # `propose_masks` redoes these evaluations, and only these
            name += "-" + hashlib.sha1(np.packbits(masks[0]).tobytes()).hexdigest()[:10]
        files[kind] = cache / m.key / f"eval-v{EVAL_VERSION}-{name}-{args.pool}-{counts}.json"
        if files[kind].exists():
            for key, series in json.loads(files[kind].read_text()).items():
                k, n, s = key.split("|")
                out[(m.key, k, int(n), int(s))] = series
        else:
            todo[kind] = masks
    if not todo:
        return out
    size = pool.images.shape[1]
    if (m.arch, size) not in nets:
        nets[(m.arch, size)] = network(m.arch, size, 0)
    net = nets[(m.arch, size)]
    warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")  # not used
    tests = []
    for kind, (masks, labelled) in todo.items():
        for n in counts_for(kind, args):
            for s in range(args.pool // n):
                rows = np.arange(s * n, (s + 1) * n)
                classes = pool.labels[rows] if labelled else None
                fill = "resample" if kind == "mask, resample fill" else "shift"
                test = bg.BackgroundTest.build(pool.images[rows], masks[rows], classes, fill=fill)
                tests.append(((m.key, kind, n, s), rows, test))
    batch = np.concatenate([pool.images] + [test.batch for _, _, test in tests])
    new: dict[tuple[str, str, int, int], list[Values]] = {}
    for epoch in range(1, epochs_of(m, args) + 1):
        net.load_weights(cache / m.key / f"epoch{epoch}.weights.h5")
        outputs = net.predict(batch, batch_size=2048, verbose=0)
        original, offset = outputs[: args.pool], args.pool
        for key, rows, test in tests:
            size_b = len(test.batch)
            variants = test.split(outputs[offset : offset + size_b])
            offset += size_b
            values, _ = bg.score(test, original[rows], variants)
            values["bg_gap"] = values.get("mixed_same_accuracy", np.nan) - values.get(
                "mixed_rand_accuracy", np.nan
            )
            values["harm_acc"], values["harm_acc_low"] = accuracy_harm(
                test, original[rows], variants
            )
            if {"only_bg", "mixed_same", "mixed_rand"} <= set(variants):
                values["harm_read"], values["harm_read_low"] = reading_harm(
                    test, original[rows], variants
                )
            new.setdefault(key, []).append(values)
    for kind in todo:
        mine = {f"{k}|{n}|{s}": v for (_, k, n, s), v in new.items() if k == kind}
        tmp = files[kind].with_suffix(".tmp")
        tmp.write_text(json.dumps(mine))
        os.replace(tmp, files[kind])
    out.update(new)
    return out


def evaluate(
    models: list[Model], cache: Path, args: argparse.Namespace
) -> dict[tuple[str, str, int, int], list[Values]]:
    """Background-test scalars per (model, mask kind, probe count, probe set), per epoch."""
    out: dict[tuple[str, str, int, int], list[Values]] = {}
    nets: dict[tuple[str, int], keras.Model] = {}
    t = time.perf_counter()
    for done, m in enumerate(models):
        out.update(evaluate_model(m, cache, args, nets))
        if (done + 1) % 10 == 0 or done + 1 == len(models):
            print(f"  evaluated {done + 1}/{len(models)} ({time.perf_counter() - t:.0f} s)")
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two models: a smoke test")
    parser.add_argument("--cache", type=Path, help="where trained weights go (kept between runs)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument(
        "--dose-families",
        nargs="*",
        choices=FAMILIES,
        default=list(DOSE_FAMILIES),
        help="families trained at every dose; the others at chance and 0.95 only",
    )
    parser.add_argument("--doses", nargs="+", type=float, default=list(DOSES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--photo-epochs", type=int, default=20, help="epochs of the photographic families"
    )
    parser.add_argument(
        "--archs",
        nargs="*",
        choices=sorted(ARCH_SIZE),
        default=sorted(ARCH_SIZE),
        help="keras.applications models trained on --arch-families at chance and 0.95",
    )
    parser.add_argument(
        "--arch-epochs", type=int, default=20, help="epochs of the keras.applications cell"
    )
    parser.add_argument("--arch-families", nargs="*", choices=FAMILIES, default=["photo"])
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--size", type=int, default=24, help="image side (32 for distractor)")
    parser.add_argument("--pool", type=int, default=POOL, help="held-out probes per model")
    parser.add_argument("--probe-counts", nargs="+", type=int, default=list(PROBE_COUNTS))
    parser.add_argument(
        "--cached-only", action="store_true", help="evaluate the models already trained, train none"
    )
    parser.add_argument(
        "--report-from-seed",
        type=int,
        default=0,
        help="report only models of this seed and later (earlier seeds: a design split)",
    )
    parser.add_argument("--train-only", action="store_true", help="fill the cache and stop")
    parser.add_argument("--markdown", type=Path, help="write the tables to this file")
    parser.add_argument("--plot", type=Path, help="draw detection against harm into this PNG")
    args = parser.parse_args(argv)
    if args.quick:
        args.families, args.dose_families, args.seeds = ["background_color", "photo"], [], 1
        args.epochs, args.n_train, args.pool, args.probe_counts = 3, 1500, 16, [8, 16]
        args.photo_epochs, args.archs = 3, []
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    start, load_start = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache or Path(scratch)
        specs = grid(args)
        print(
            f"TensorFlow/Keras {keras.__version__}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}; {len(specs)} models, {args.n_train} training images; "
            f"{args.epochs} epochs at {args.size}x{args.size} (synthetic), {args.photo_epochs} at "
            f"{PHOTO_SIZE}x{PHOTO_SIZE} (photographic), {args.arch_epochs} at "
            f"{ARCH_SIZE['mobilenetv2']}x{ARCH_SIZE['mobilenetv2']} (MobileNetV2)",
            flush=True,
        )
        models = []
        for spec in specs:
            if args.cached_only and not (cache / spec.key / "model.json").exists():
                continue
            t = time.perf_counter()
            model = train(spec, cache, args)
            models.append(model)
            print(
                f"  {model.family:18s} dose {model.dose:.2f} seed {model.seed} "
                f"acc agree {model.acc_agree:.2f} disagree {model.acc_disagree:.2f} "
                f"harm {model.harm:+.2f} ({time.perf_counter() - t:.0f} s)",
                flush=True,
            )
        models = [m for m in models if m.seed >= args.report_from_seed]
        if not args.train_only:
            command = command_line("bench_detection.py", argv)
            report(evaluate(models, cache, args), models, args, command, load_start)
    print(f"\nTotal time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
