"""Catch a background shortcut while the model trains.

Two small CNNs learn to tell shapes apart on synthetic images (`saliency_callback.data.datasets`).
For the *shortcut* model, the background colour agrees with the class on 95% of the training
images, so the background gives the answer away; for the *clean* model the background is
random. Both train with a `SaliencyCallback` and the default `ShortcutAlarm()`, each writing
its own run into one log dir. With the probes' masks the callback swaps their backgrounds every
epoch and estimates the *harm*: the accuracy the model loses on images whose background
disagrees with the object, with 95% bounds from the probes' spread; the alarm fires when the
lower bound is above 0.05. At the end a verdict table sets the measured test accuracy on
agreeing vs disagreeing backgrounds next to the estimate, the mass in mask, the flip rate and
the gap.

With `--fix`, a third model trains on the shortcut model's data with the remedy of
`docs/after-the-alarm.md`: background-swap training (`sc.BackgroundSwap`, a share `p` of the
training images pasted, each epoch, onto another image's object-removed background), watched
by the same callback and alarm; its row joins the verdict table.

Run:
    python examples/shortcut_demo.py            # 25-100 s on 2 CPU cores, depending on the CPU
    python examples/shortcut_demo.py --fix      # and the fixed model: one more training run
    tensorboard --logdir logs/shortcut_demo --samples_per_plugin images=100
"""

from __future__ import annotations

import argparse
import glob
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np

import saliency_callback as sc

# The two models the demo trains: name and how often the background agrees with the class.
MODELS = (("shortcut", 0.95), ("clean", 1 / 3))
# The optional third: the shortcut model's data, trained with background swaps at share `FIX_P`
# (the swap probability `benchmarks/bench_fix.py` supports, docs/after-the-alarm.md).
FIXED = ("fixed", 0.95)
FIX_P = 0.8
RUNS = (*MODELS, FIXED)


@dataclass
class RunResult:
    """What one trained model scored."""

    name: str
    agreement: float
    acc_agree: float
    acc_disagree: float
    mass_in_mask: float
    chance: float
    reliance: float
    harm: float
    harm_low: float
    harm_high: float
    gap: float
    flip_rate: float
    alarm_epochs: list[int]
    alarm_at_end: bool  # the alarm's signal still on the wrong side of its limit at the end
    seconds: float


def build_model(image_size: int, num_classes: int, seed: int) -> keras.Model:
    """A small CNN: three conv blocks, global average pooling, a softmax head."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((image_size, image_size, 3))
    x = inp
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inp, out)
    model.compile(
        keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


class EpochPrinter(keras.callbacks.Callback):
    """Prints one line per epoch: accuracy, mass in mask (vs chance), the background tests'
    estimated harm (with its bounds), flip rate and gap, and the alarm."""

    def __init__(self, name: str, saliency: sc.SaliencyCallback) -> None:
        super().__init__()
        self.name, self.saliency = name, saliency

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        chance = float(np.nanmean(sc.chance_level(self.saliency.probes.masks)))
        nan = float("nan")
        line = (
            f"  [{self.name:8s}] epoch {epoch + 1:2d}  train acc {logs.get('accuracy', 0):.2f}  "
            f"mass in mask {logs.get('saliency_mass_in_mask', nan):.2f} (chance {chance:.2f})  "
            f"harm {logs.get('saliency_background_harm', nan):5.2f} "
            f"[{logs.get('saliency_background_harm_low', nan):5.2f}, "
            f"{logs.get('saliency_background_harm_high', nan):5.2f}]  "
            f"flips {logs.get('saliency_background_flip_rate', nan):.2f}  "
            f"gap {logs.get('saliency_background_gap', nan):5.2f}"
        )
        if any(e.step == epoch for e in self.saliency.alarm_events):
            line += "  ALARM"
        print(line, flush=True)


def train_one(
    name: str,
    agreement: float,
    *,
    log_dir: str,
    n_train: int,
    epochs: int,
    image_size: int,
    num_probes: int,
    seed: int,
    verbose: bool = True,
    swap_p: float | None = None,
) -> RunResult:
    """Trains one model on data whose background agrees with the class for `agreement`; with
    `swap_p`, on background-swapped batches of that data (`sc.BackgroundSwap`, the remedy)."""
    train, test = sc.make_shortcut_splits(
        n_train, 600, agreement=agreement, seed=seed, image_size=image_size
    )
    model = build_model(image_size, len(train.class_names), seed)
    # Probes: held-out images drawn as the training data is (a validation sample: the cue
    # agrees as often as in training). Balanced probes would dilute the estimate (see the
    # guide's "Choosing probes"); the balanced test split below measures the true harm.
    _, probes = sc.make_shortcut_splits(
        1,
        num_probes,
        agreement=agreement,
        test_agreement=agreement,
        seed=seed + 1,
        image_size=image_size,
    )
    # The recommended alarm (and the default method, SmoothGrad): it fires when the accuracy
    # the model is estimated to lose where the background disagrees, from the probes'
    # background swaps, is above 0.05 at its 95% lower bound.
    alarm = sc.ShortcutAlarm()
    saliency = sc.SaliencyCallback(
        probes.images,
        probes.labels,
        probes.masks,
        log_dir=log_dir,
        runtime=sc.Runtime(run_name=f"saliency_{name}", log_before_training=True),
        class_names=list(probes.class_names),
        alarm=alarm,
    )
    callbacks: list[keras.callbacks.Callback] = [saliency]
    if verbose:
        callbacks.append(EpochPrinter(name, saliency))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the alarm is printed by EpochPrinter
        if swap_p is None:
            model.fit(
                train.images,
                train.labels,
                epochs=epochs,
                batch_size=64,
                verbose=0,
                callbacks=callbacks,
            )
        else:
            swapped = sc.BackgroundSwap(
                train.images, train.labels, train.masks, p=swap_p, batch_size=64, seed=seed
            )
            model.fit(swapped, epochs=epochs, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - start
    pred = model.predict(test.images, verbose=0, batch_size=256).argmax(axis=1)
    correct = pred == test.labels
    final_mass = saliency.history["mass_in_mask"][-1][1]
    final = {
        name: saliency.history[f"background/{name}"][-1][1]
        for name in ("gap", "flip_rate", "reliance", "harm", "harm_low", "harm_high")
    }
    watched, limit = saliency.history[alarm.monitor][-1][1], alarm.limit(None)
    return RunResult(
        name=name,
        agreement=agreement,
        acc_agree=float(correct[test.cue_agrees].mean()),
        acc_disagree=float(correct[~test.cue_agrees].mean()),
        mass_in_mask=float(final_mass),
        chance=float(np.nanmean(sc.chance_level(saliency.probes.masks))),
        reliance=float(final["reliance"]),
        harm=float(final["harm"]),
        harm_low=float(final["harm_low"]),
        harm_high=float(final["harm_high"]),
        gap=float(final["gap"]),
        flip_rate=float(final["flip_rate"]),
        alarm_epochs=[e.step + 1 for e in saliency.alarm_events],
        alarm_at_end=bool(watched > limit if alarm.side == "above" else watched < limit),
        seconds=seconds,
    )


def clear_previous_runs(log_dir: str, verbose: bool = True) -> list[str]:
    """Deletes the event files an earlier run of the demo left in `log_dir`; returns them.

    Only `events.out.tfevents.*` files directly inside the demo's own run directories
    (`saliency_shortcut`, `saliency_clean`, `saliency_fixed`) are deleted, so TensorBoard shows
    this run alone; anything else in `log_dir` is left as it is.
    """
    removed = []
    for name, _ in RUNS:
        run_dir = os.path.join(log_dir, f"saliency_{name}")
        for path in sorted(glob.glob(os.path.join(glob.escape(run_dir), "events.out.tfevents.*"))):
            if os.path.isfile(path):
                os.remove(path)
                removed.append(path)
    if verbose and removed:
        print(f"Cleared {len(removed)} event file(s) of an earlier demo run from {log_dir}")
    return removed


def verdict_table(results: list[RunResult]) -> str:
    """The closing table: accuracy on agreeing vs disagreeing backgrounds next to saliency."""
    head = (
        f"{'run':10s} {'bg agrees':>9s} {'acc agree':>9s} {'acc disagree':>12s} "
        f"{'harm [95% bounds]':>19s} {'mass in mask':>12s} {'chance':>6s} {'flips':>5s} "
        f"{'gap':>5s}  verdict"
    )
    lines = [head, "-" * (len(head) + 30)]
    for r in results:
        if not r.alarm_epochs:
            verdict = "no alarm"
        elif r.alarm_at_end:
            verdict = f"SHORTCUT: alarm at epoch {r.alarm_epochs[0]}"
        else:  # it fired, then its signal came back below the limit
            verdict = f"quiet at the end (alarm at epoch {r.alarm_epochs[0]})"
        lines.append(
            f"{r.name:10s} {r.agreement:9.0%} {r.acc_agree:9.2f} {r.acc_disagree:12.2f} "
            f"{r.harm:5.2f} [{r.harm_low:5.2f}, {r.harm_high:5.2f}] "
            f"{r.mass_in_mask:12.2f} {r.chance:6.2f} {r.flip_rate:5.2f} {r.gap:5.2f}  {verdict}"
        )
    return "\n".join(lines)


def run(
    log_dir: str = "logs/shortcut_demo",
    *,
    n_train: int = 3000,
    epochs: int = 10,
    image_size: int = 48,
    num_probes: int = 16,
    seed: int = 0,
    verbose: bool = True,
    fix: bool = False,
) -> list[RunResult]:
    """Trains the shortcut and the clean model, and with `fix` the fixed one (background swaps
    at `FIX_P` on the shortcut model's data); returns their results."""
    settings = dict(
        log_dir=log_dir,
        n_train=n_train,
        epochs=epochs,
        image_size=image_size,
        num_probes=num_probes,
        seed=seed,
        verbose=verbose,
    )
    clear_previous_runs(log_dir, verbose)
    results = []
    for name, agreement in RUNS if fix else MODELS:
        swap_p = FIX_P if name == FIXED[0] else None
        if verbose:
            remedy = "" if swap_p is None else f", {swap_p:.0%} of them swapped each epoch"
            print(
                f"Training the {name} model (background agrees with the class on "
                f"{agreement:.0%} of training images{remedy})",
                flush=True,
            )
        results.append(train_one(name, agreement, swap_p=swap_p, **settings))  # type: ignore[arg-type]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="logs/shortcut_demo")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fix",
        action="store_true",
        help=f"also train the shortcut model's data with background swaps (p={FIX_P})",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run(
        args.logdir, n_train=args.n_train, epochs=args.epochs, seed=args.seed, fix=args.fix
    )
    print()
    print(verdict_table(results))
    print(f"\nTotal time {time.perf_counter() - start:.0f} s. See the overlays epoch by epoch:")
    print(f"  tensorboard --logdir {args.logdir} --samples_per_plugin images=100")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
