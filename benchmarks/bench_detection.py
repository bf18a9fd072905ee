"""Which signal to trust: does the alarm fire on the shortcuts that cost accuracy?

What it measures
    For each shortcut family of `saliency_callback.datasets` (`cue=`), each cue share of the
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
    outside, part of the background inside); and, when `saliency_callback.proposals` exists,
    the mask-free proposals (`proposed`) and their boxes.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from _markdown import command_line, load_average, markers, write_section
from scipy import stats

import saliency_callback as sc
from saliency_callback import background as bg
from saliency_callback import calibration, metrics
from saliency_callback.datasets import CUES

NUM_CLASSES = 3
CHANCE = 1 / NUM_CLASSES
DOSES = (CHANCE, 0.6, 0.75, 0.9, 0.95, 0.99)
DOSE_FAMILIES = ("background_color", "patch", "distractor")
DISTRACTOR_SIZE = 32  # the distractor family needs 32x32 images
POOL = 64
PROBE_COUNTS = (8, 16, 32, 64)
HARMFUL, HARMLESS = 0.25, 0.05
BY_EPOCH = 3
DEFAULT_PROBES = 16  # probes.DEFAULT_NUM_PROBES


@dataclass
class Model:
    """One trained model of the grid and its ground truth."""

    family: str
    dose: float
    seed: int
    harm: float = float("nan")  # after the last epoch
    harm_by_epoch: list[float] = field(default_factory=list)
    acc_agree: float = float("nan")
    acc_disagree: float = float("nan")

    @property
    def key(self) -> str:
        return f"{self.family}-{self.dose:.3f}-{self.seed}"


def data(family: str, n: int, agreement: float, seed: int, size: int) -> Any:
    if family == "distractor":
        size = max(size, DISTRACTOR_SIZE)
    return sc.make_shortcut_data(
        n, image_size=size, num_classes=NUM_CLASSES, agreement=agreement, seed=seed, cue=family
    )


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
    s = model_spec.seed
    trainset = data(model_spec.family, args.n_train, model_spec.dose, s, args.size)
    test = data(model_spec.family, 600, 0.5, s + 2000, args.size)
    model = small_cnn(trainset.images.shape[1], s)
    model.fit(
        trainset.images,
        trainset.labels,
        epochs=args.epochs,
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
    return specs


# -- evaluation, offline from the saved weights -------------------------------------------------

MASK_KINDS = ("mask", "box", "loose box", "shifted box", "mask, no labels")
PROPOSED_KINDS = ("proposed", "proposed box")


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
    """Each mask kind's masks for the probe pool, and whether its tests use the labels."""
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
    }
    proposals = _proposals()
    if proposals is not None:
        proposed = proposals.propose_masks(pool.images)
        found = ~np.asarray(proposed.fallback, bool)[:, None, None]  # fallbacks left out
        kinds["proposed"] = (np.asarray(proposed.masks, bool) & found, True)
        kinds["proposed box"] = (metrics.masks_from_boxes(proposed.boxes, shape) & found, True)
    return kinds


def _proposals() -> Any:
    try:
        from saliency_callback import proposals
    except ImportError:
        return None
    return proposals


Values = dict[str, float]


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


def accuracy_harm(test: Any, original: np.ndarray, variants: dict[str, np.ndarray]) -> tuple:
    """The default estimate with each probe's term right/wrong instead of a probability:
    (estimate, lower bound). Same swaps, same agreement (`background.swap_agreement`)."""
    if not {"only_bg", "mixed_rand", "mixed_same"} <= set(variants):
        return float("nan"), float("nan")
    y, same_agrees, rand_agrees, both = bg.swap_agreement(test, original, variants)
    d = calibration.paired_differences(
        same_agrees,
        rand_agrees,
        (bg.predicted_classes(variants["mixed_same"]) == y).astype(np.float64),
        (bg.predicted_classes(variants["mixed_rand"]) == y).astype(np.float64),
    )
    d[~both] = np.nan
    finite = d[np.isfinite(d)]
    return (float(finite.mean()) if len(finite) else float("nan")), bonett_price_low(d)


EVAL_VERSION = 3  # bump when the background tests change: cached evaluations are redone


def counts_for(kind: str, args: argparse.Namespace) -> list[int]:
    """Probe counts evaluated per mask kind: all for exact masks (the probe-count table), the
    default count for the others (the evaluation is the benchmark's costliest part)."""
    default = [n for n in args.probe_counts if n == DEFAULT_PROBES] or args.probe_counts[:1]
    return list(args.probe_counts) if kind == "mask" else default


def evaluate_model(
    m: Model, cache: Path, args: argparse.Namespace, nets: dict[int, keras.Model]
) -> dict[tuple[str, str, int, int], list[Values]]:
    """One model's background-test scalars per (mask kind, probe count, probe set), per epoch;
    cached per mask kind in the model's folder."""
    pool = data(m.family, args.pool, m.dose, m.seed + 1000, args.size)
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
    if size not in nets:
        nets[size] = small_cnn(size, 0)
    net = nets[size]
    warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")  # not used
    tests = []
    for kind, (masks, labelled) in todo.items():
        for n in counts_for(kind, args):
            for s in range(args.pool // n):
                rows = np.arange(s * n, (s + 1) * n)
                classes = pool.labels[rows] if labelled else None
                test = bg.BackgroundTest.build(pool.images[rows], masks[rows], classes)
                tests.append(((m.key, kind, n, s), rows, test))
    batch = np.concatenate([pool.images] + [test.batch for _, _, test in tests])
    new: dict[tuple[str, str, int, int], list[Values]] = {}
    for epoch in range(1, args.epochs + 1):
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
    nets: dict[int, keras.Model] = {}
    t = time.perf_counter()
    for done, m in enumerate(models):
        out.update(evaluate_model(m, cache, args, nets))
        if (done + 1) % 10 == 0 or done + 1 == len(models):
            print(f"  evaluated {done + 1}/{len(models)} ({time.perf_counter() - t:.0f} s)")
    return out


RULES: dict[str, tuple[tuple[str, float], ...]] = {  # name -> (scalar, threshold) pairs:
    # fires when every scalar is above its threshold
    "harm_low > 0.05 (default)": (("harm_low", 0.05),),
    "reliance > 0.5 (former default)": (("reliance", 0.5),),
    "flip_rate > 0.5": (("flip_rate", 0.5),),
    "gap > 0.25": (("gap", 0.25),),
    "bg_gap > 0.25": (("bg_gap", 0.25),),
}
TWO_SIDED_RULE = "harm_low > 0.05 and reliance > 0 (two-sided)"
"""The default rule, only where the same composites follow the background's source more often
than the object's (`reliance > 0`, a sign, fixed a priori): the issue's two-sided comparison."""
RULES[TWO_SIDED_RULE] = (("harm_low", 0.05), ("reliance", 0.0))
ACCURACY_RULE = "harm_acc_low > 0.05 (right/wrong terms)"
"""The default rule with each probe's term right/wrong (0/1) instead of a probability, and a
paired-binary bound (`accuracy_harm`): an underconfident model's probabilities move little
where its predictions flip. Added after the held-out results showed the blur shortfall; the
row reports it, it decides nothing."""
RULES[ACCURACY_RULE] = (("harm_acc_low", 0.05),)
DEFAULT_RULE = "harm_low > 0.05 (default)"


def first_alarm(series: list[Values], rule: str) -> int | None:
    """The first epoch (1-based) at which the rule fires (NaN never fires)."""
    for epoch, values in enumerate(series, start=1):
        if fires(values, rule):
            return epoch
    return None


def fires(values: Values, rule: str) -> bool:
    """Whether `rule` fires on one epoch's scalars (a NaN never fires)."""
    for name, threshold in RULES[rule]:
        value = values.get(name, np.nan)
        if not (np.isfinite(value) and value > threshold):
            return False
    return True


@dataclass
class Outcome:
    """Per model, as means over its probe sets: did the rule fire by `BY_EPOCH`, at any
    epoch; within `BY_EPOCH` epochs of the first epoch whose measured harm reached `HARMFUL`
    (`timely`); at an epoch whose own measured harm was below `HARMLESS` (`wrong_now`)."""

    model: Model
    by_epoch: float
    ever: float
    timely: float = float("nan")
    wrong_now: float = float("nan")


def outcomes(
    results: dict[tuple[str, str, int, int], list[Values]],
    models: list[Model],
    rule: str,
    kind: str,
    n: int,
) -> list[Outcome]:
    out = []
    for m in models:
        sets = [
            v for (key, k, count, _), v in results.items() if (key, k, count) == (m.key, kind, n)
        ]
        if not sets:
            continue
        firsts = [first_alarm(series, rule) for series in sets]
        by = float(np.mean([f is not None and f <= BY_EPOCH for f in firsts]))
        ever = float(np.mean([f is not None for f in firsts]))
        harmful = [e for e, h in enumerate(m.harm_by_epoch, start=1) if h >= HARMFUL]
        timely = float("nan")
        if harmful:
            late = harmful[0] + BY_EPOCH - 1
            timely = float(np.mean([f is not None and f <= late for f in firsts]))
        wrong = [
            any(fires(v, rule) and m.harm_by_epoch[e] < HARMLESS for e, v in enumerate(series))
            for series in sets
        ]
        out.append(Outcome(m, by, ever, timely, float(np.mean(wrong))))
    return out


def rates(found: list[Outcome], family: str | None = None) -> tuple[float, int, float, int]:
    """(detection by epoch 3 on harm >= 0.25, its n, false alarms on harm < 0.05, its n)."""
    found = [o for o in found if family is None or o.model.family == family]
    harmful = [o.by_epoch for o in found if o.model.harm >= HARMFUL]
    harmless = [o.ever for o in found if o.model.harm < HARMLESS]
    mean = lambda x: float(np.mean(x)) if x else float("nan")  # noqa: E731
    return mean(harmful), len(harmful), mean(harmless), len(harmless)


def cell(found: list[Outcome], family: str | None = None) -> str:
    hit, n_hit, false, n_false = rates(found, family)
    return f"{pct(hit)} ({n_hit}) · {pct(false)} ({n_false})"


def timely_cell(found: list[Outcome], family: str) -> str:
    found = [o for o in found if family == "all" or o.model.family == family]
    hit = [o.timely for o in found if np.isfinite(o.timely) and o.model.harm >= HARMFUL]
    wrong = [o.wrong_now for o in found if o.model.harm < HARMLESS]
    return f"{pct(np.mean(hit) if hit else np.nan)} ({len(hit)}) · " + (
        f"{pct(np.mean(wrong) if wrong else np.nan)} ({len(wrong)})"
    )


def pct(x: float) -> str:
    return "-" if np.isnan(x) else f"{x:.0%}"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def early_score(series: list[Values], name: str) -> float:
    """A probe set's score for the AUC: the largest value of `name` over the first `BY_EPOCH`
    epochs (-inf where it was never measured: NaN is "no evidence")."""
    values = [v.get(name, np.nan) for v in series[:BY_EPOCH]]
    finite = [x for x in values if np.isfinite(x)]
    return max(finite) if finite else float("-inf")


def auc(positive: list[float], negative: list[float]) -> float:
    """P(a positive scores above a negative), ties counting half (the Mann-Whitney AUC)."""
    if not positive or not negative:
        return float("nan")
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def auc_cell(
    results: dict[tuple[str, str, int, int], list[Values]],
    models: list[Model],
    kind: str,
    n: int,
    name: str,
    family: str | None,
) -> str:
    scores: dict[bool, list[float]] = {True: [], False: []}
    for m in models:
        if family is not None and m.family != family:
            continue
        if HARMLESS <= m.harm < HARMFUL:
            continue
        for (key, k, count, _), series in results.items():
            if (key, k, count) == (m.key, kind, n):
                scores[m.harm >= HARMFUL].append(early_score(series, name))
    value = auc(scores[True], scores[False])
    return "-" if np.isnan(value) else f"{value:.2f}"


def tables(
    results: dict[tuple[str, str, int, int], list[Values]],
    models: list[Model],
    args: argparse.Namespace,
) -> list[str]:
    families = [f for f in args.families if any(m.family == f for m in models)]
    kinds = [k for k in (*MASK_KINDS, *PROPOSED_KINDS) if any(r[1] == k for r in results)]
    n0 = counts_for("box", args)[0]
    out = []
    rows = []
    for family in families:
        for dose in sorted({m.dose for m in models if m.family == family}):
            ms = [m for m in models if (m.family, m.dose) == (family, dose)]
            harms = np.array([m.harm for m in ms])
            rows.append(
                [
                    family,
                    f"{dose:.2f}",
                    str(len(ms)),
                    f"{np.mean([m.acc_agree for m in ms]):.2f}",
                    f"{np.mean([m.acc_disagree for m in ms]):.2f}",
                    f"{harms.mean():+.2f}",
                    f"{harms.min():+.2f} .. {harms.max():+.2f}",
                ]
            )
    out.append(
        table(
            "Ground truth: each model's harm (test accuracy where the cue agrees minus where it "
            "disagrees, 600 test images, no library code)",
            [
                "family",
                "cue share",
                "models",
                "acc agree",
                "acc disagree",
                "harm (mean)",
                "harm (range)",
            ],
            rows,
        )
    )
    cols = [*families, "all"]
    out.append(
        table(
            f"Decision rules, exact masks, {n0} probes: detection by epoch {BY_EPOCH} on models "
            f"with harm >= {HARMFUL} (n) · false alarms at any epoch on models with harm < "
            f"{HARMLESS} (n)",
            ["rule", *cols],
            [
                [rule]
                + [
                    cell(outcomes(results, models, rule, "mask", n0), f if f != "all" else None)
                    for f in cols
                ]
                for rule in RULES
            ],
        )
    )
    out.append(
        table(
            f"Mask kinds, the default rule, {n0} probes: detection by epoch {BY_EPOCH} (harm >= "
            f"{HARMFUL}) · false alarms (harm < {HARMLESS})",
            ["masks", *cols],
            [
                [kind]
                + [
                    cell(
                        outcomes(results, models, DEFAULT_RULE, kind, n0), f if f != "all" else None
                    )
                    for f in cols
                ]
                for kind in kinds
            ],
        )
    )
    out.append(
        table(
            f"Alternatives per mask kind: the default rule against `{TWO_SIDED_RULE}` and "
            f"`{ACCURACY_RULE}`, {n0} probes: detection by epoch {BY_EPOCH} (harm >= "
            f"{HARMFUL}) · false alarms (harm < {HARMLESS})",
            ["masks", "rule", *cols],
            [
                [kind, label]
                + [
                    cell(outcomes(results, models, rule, kind, n0), f if f != "all" else None)
                    for f in cols
                ]
                for kind in kinds
                for label, rule in (
                    ("default", DEFAULT_RULE),
                    ("two-sided", TWO_SIDED_RULE),
                    ("right/wrong terms", ACCURACY_RULE),
                )
            ],
        )
    )
    out.append(
        table(
            f"AUC by epoch {BY_EPOCH}, {n0} probes: models with harm >= {HARMFUL} against models "
            f"with harm < {HARMLESS}, each probe set scored by the largest value of the signal "
            f"over epochs 1-{BY_EPOCH}",
            ["masks", "signal", *cols],
            [
                [kind, name]
                + [
                    auc_cell(results, models, kind, n0, name, f if f != "all" else None)
                    for f in cols
                ]
                for kind in kinds
                for name in ("harm_low", "reliance")
            ],
        )
    )
    out.append(
        table(
            f"Against the harm at each epoch, the default rule (and the last row: "
            f"`{ACCURACY_RULE}`), {n0} probes: share firing "
            f"within {BY_EPOCH} epochs of the first epoch whose measured harm reached "
            f"{HARMFUL} (models that reached it) · share of models with final harm < "
            f"{HARMLESS} firing at an epoch whose own measured harm was < {HARMLESS}",
            ["masks", *cols],
            [
                [kind]
                + [timely_cell(outcomes(results, models, DEFAULT_RULE, kind, n0), f) for f in cols]
                for kind in kinds
            ]
            + [  # the alternative of the table "Alternatives", for comparison
                ["mask (right/wrong terms)"]
                + [
                    timely_cell(outcomes(results, models, ACCURACY_RULE, "mask", n0), f)
                    for f in cols
                ]
            ],
        )
    )
    rows = []
    for kind in ["mask"]:
        for n in args.probe_counts:
            found = outcomes(results, models, DEFAULT_RULE, kind, n)
            bins = []
            for lo, hi in ((HARMFUL, 0.5), (0.5, 2.0)):
                sel = [o.by_epoch for o in found if lo <= o.model.harm < hi]
                bins.append(f"{np.mean(sel):.0%} ({len(sel)})" if sel else "-")
            rows.append([kind, str(n), *bins, cell(found)])
    out.append(
        table(
            f"Probe count, the default rule: detection by epoch {BY_EPOCH} on harm 0.25-0.5 and "
            f">= 0.5; then all harmful · false alarms (subsets of a pool of {args.pool} held-out "
            "probes, averaged over the disjoint subsets)",
            ["masks", "probes", "harm 0.25-0.5", "harm >= 0.5", "harmful · false"],
            rows,
        )
    )
    rows = []
    for lo, hi in ((-1, HARMLESS), (HARMLESS, HARMFUL), (HARMFUL, 0.5), (0.5, 0.9), (0.9, 2)):
        ms = [m for m in models if lo <= m.harm < hi]
        if not ms:
            continue
        est = [
            results[(m.key, "mask", n0, s)][-1]
            for m in ms
            for s in range(args.pool // n0)
            if (m.key, "mask", n0, s) in results
        ]
        rows.append(
            [
                f"{max(lo, -1):.2f} .. {min(hi, 1):.2f}",
                str(len(ms)),
                f"{np.mean([m.harm for m in ms]):+.2f}",
                f"{_mean_of(est, 'harm'):+.2f}",
                f"{_mean_of(est, 'harm_low'):+.2f} .. {_mean_of(est, 'harm_high'):+.2f}",
                f"{_mean_of(est, 'reliance'):+.2f}",
                f"{_mean_of(est, 'flip_rate'):.2f}",
            ]
        )
    out.append(
        table(
            f"What the probes estimate: measured harm against the logged signals after the last "
            f"epoch (exact masks, {n0} probes, means)",
            [
                "measured harm",
                "models",
                "mean harm",
                "estimate `harm`",
                "bounds `harm_low .. harm_high`",
                "reliance",
                "flip_rate",
            ],
            rows,
        )
    )
    return out


def _mean_of(values: list[Values], name: str) -> float:
    return float(np.nanmean([v.get(name, np.nan) for v in values]))


def plot(
    results: dict[tuple[str, str, int, int], list[Values]],
    models: list[Model],
    args: argparse.Namespace,
    path: Path,
) -> None:
    """Detection by epoch 3 against measured harm: per family (exact masks, 16 probes), and
    per probe count (all families); the false-alarm rate at harm < 0.05 in each legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.array([-1.0, HARMLESS, 0.15, HARMFUL, 0.4, 0.6, 0.8, 0.95, 1.01])
    centres = np.array([0.0, 0.1, 0.2, 0.32, 0.5, 0.7, 0.87, 0.98])
    n0 = counts_for("box", args)[0]

    def curve(found: list[Outcome]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for i in range(len(edges) - 1):
            sel = [o.by_epoch for o in found if edges[i] <= o.model.harm < edges[i + 1]]
            if sel:
                xs.append(centres[i])
                ys.append(np.mean(sel))
        return np.array(xs), np.array(ys)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    families = [f for f in args.families if any(m.family == f for m in models)]
    for family in families:
        found = [
            o
            for o in outcomes(results, models, DEFAULT_RULE, "mask", n0)
            if o.model.family == family
        ]
        x, y = curve(found)
        false = rates(found)[2]
        axes[0].plot(x, y, "o-", label=f"{family} (false alarms {pct(false)})")
    axes[0].set_title(f"Per family (exact masks, {n0} probes)")
    for n in args.probe_counts:
        found = outcomes(results, models, DEFAULT_RULE, "mask", n)
        x, y = curve(found)
        axes[1].plot(x, y, "o-", label=f"{n} probes (false alarms {pct(rates(found)[2])})")
    axes[1].set_title("Per probe count (exact masks, all families)")
    for ax in axes:
        ax.axvspan(-0.05, HARMLESS, color="0.9")
        ax.axvline(HARMFUL, color="0.6", ls="--", lw=1)
        ax.set_xlabel("measured harm (test accuracy, cue agrees - disagrees)")
        ax.set_xlim(-0.05, 1.02)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"share firing by epoch {BY_EPOCH}")
    fig.suptitle(
        "Default ShortcutAlarm() (harm_low > 0.05): detection against harm; grey band: "
        "harmless models",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def seed_range(models: list[Model]) -> str:
    """Seeds and how many models each has, e.g. `1-3 (24 each), 4 (10)`."""
    counts = {s: sum(m.seed == s for m in models) for s in sorted({m.seed for m in models})}
    full = max(counts.values(), default=0)
    whole = [s for s, c in counts.items() if c == full]
    parts = [f"{whole[0]}-{whole[-1]} ({full} each)" if len(whole) > 1 else f"{whole[0]} ({full})"]
    parts += [f"{s} ({c})" for s, c in counts.items() if c != full]
    return ", ".join(parts) if counts else "none"


BEGIN, END = markers("bench_detection")


def report(
    results: dict[tuple[str, str, int, int], list[Values]],
    models: list[Model],
    args: argparse.Namespace,
    command: str,
    load_start: float,
) -> None:
    text = "\n".join(tables(results, models, args))
    print("\n" + text)
    if args.markdown is not None:
        head = (
            f"{len(models)} models (seeds {seed_range(models)}), {args.epochs} epochs of "
            f"{args.n_train} images.\n\n"
        )
        write_section(args.markdown, "bench_detection", head + text, command, load_start)
    if args.plot is not None:
        plot(results, models, args, args.plot)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two models: a smoke test")
    parser.add_argument("--cache", type=Path, help="where trained weights go (kept between runs)")
    parser.add_argument("--families", nargs="+", choices=CUES, default=list(CUES))
    parser.add_argument(
        "--dose-families",
        nargs="+",
        choices=CUES,
        default=list(DOSE_FAMILIES),
        help="families trained at every dose; the others at chance and 0.95 only",
    )
    parser.add_argument("--doses", nargs="+", type=float, default=list(DOSES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
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
        args.families, args.dose_families, args.seeds = ["background_color"], [], 1
        args.epochs, args.n_train, args.pool, args.probe_counts = 3, 1500, 16, [8, 16]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    start, load_start = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache or Path(scratch)
        specs = grid(args)
        print(
            f"TensorFlow/Keras {keras.__version__}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}; {len(specs)} models, {args.epochs} epochs of "
            f"{args.n_train} images {args.size}x{args.size}",
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
