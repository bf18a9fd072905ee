"""The detection benchmark's shared records and its report (`bench_detection.py`): a trained
model's ground truth (`Model`), the decision rules and when they fire, the outcome per model
and the tables and plot of `docs/detection.md`. No training, no model calls: it reads the
scalars the benchmark evaluated."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _markdown import markers, write_section

HARMFUL, HARMLESS = 0.25, 0.05
BY_EPOCH = 3
DEFAULT_PROBES = 16  # probes.DEFAULT_NUM_PROBES

MASK_KINDS = ("mask", "box", "loose box", "shifted box", "mask, no labels", "mask, resample fill")
PHOTO_KINDS = ("mask", "box", "mask, no labels", "mask, resample fill")
"""The photographic families' mask kinds (with the proposals): their evaluation is the costlier."""
PROPOSED_KINDS = ("proposed", "proposed box")
Values = dict[str, float]


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
    arch: str = "cnn"

    @property
    def key(self) -> str:
        tail = "" if self.arch == "cnn" else f"-{self.arch}"
        return f"{self.family}-{self.dose:.3f}-{self.seed}{tail}"

    @property
    def cell(self) -> str:
        """The family, with the architecture when it is not the small CNN (the tables' column)."""
        return self.family if self.arch == "cnn" else f"{self.family} ({self.arch})"


def cells(models: list[Model], args: argparse.Namespace) -> list[str]:
    """The tables' columns: the families in `--families` order, then the architecture cells."""
    found = {m.cell for m in models}
    plain = [f for f in args.families if f in found]
    return plain + sorted(found - set(plain))


def counts_for(kind: str, args: argparse.Namespace) -> list[int]:
    """Probe counts evaluated per mask kind: all for exact masks (the probe-count table), the
    default count for the others (the evaluation is the benchmark's costliest part)."""
    default = [n for n in args.probe_counts if n == DEFAULT_PROBES] or args.probe_counts[:1]
    return list(args.probe_counts) if kind == "mask" else default


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
READING_RULE = "harm_read_low > 0.05 (former default: backgrounds sorted by the model's reading)"
"""The estimate before issue #26: each probe's two backgrounds sorted by what the model
predicts from each background alone (`reading_harm`), kept to show its false alarms."""
RULES[READING_RULE] = (("harm_read_low", 0.05),)
STREAK_RULE = "harm_low > 0.05 at 2 logged epochs in a row"
"""The default rule with `ShortcutAlarm(patience=2)`: the a-priori alternative for whole fits
(a false alarm must then survive two epochs), reported beside the default."""
RULES[STREAK_RULE] = (("harm_low", 0.05),)
PATIENCE = {STREAK_RULE: 2}


def alarm_epochs(series: list[Values], rule: str) -> list[bool]:
    """Per epoch, whether the alarm fires there: the rule held at this epoch and at the
    `PATIENCE[rule] - 1` epochs before it (as `ShortcutAlarm(patience=...)`; NaN breaks no
    streak and continues none)."""
    need, streak, out = PATIENCE.get(rule, 1), 0, []
    for values in series:
        value = values.get(RULES[rule][0][0], np.nan)
        if fires(values, rule):
            streak += 1
        elif np.isfinite(value):
            streak = 0
        out.append(fires(values, rule) and streak >= need)
    return out


def first_alarm(series: list[Values], rule: str) -> int | None:
    """The first epoch (1-based) at which the rule fires (NaN never fires)."""
    for epoch, on in enumerate(alarm_epochs(series, rule), start=1):
        if on:
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
    by_model: dict[str, list[list[Values]]] = {}  # one pass: the tables call this per cell
    for (key, k, count, _), v in results.items():
        if (k, count) == (kind, n):
            by_model.setdefault(key, []).append(v)
    out = []
    for m in models:
        sets = by_model.get(m.key, [])
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
            any(on and m.harm_by_epoch[e] < HARMLESS for e, on in enumerate(alarm_epochs(s, rule)))
            for s in sets
        ]
        out.append(Outcome(m, by, ever, timely, float(np.mean(wrong))))
    return out


def rates(found: list[Outcome], family: str | None = None) -> tuple[float, int, float, int]:
    """(detection by epoch 3 on harm >= 0.25, its n, false alarms on harm < 0.05, its n)."""
    found = [o for o in found if family is None or o.model.cell == family]
    harmful = [o.by_epoch for o in found if o.model.harm >= HARMFUL]
    harmless = [o.ever for o in found if o.model.harm < HARMLESS]
    mean = lambda x: float(np.mean(x)) if x else float("nan")  # noqa: E731
    return mean(harmful), len(harmful), mean(harmless), len(harmless)


def cell(found: list[Outcome], family: str | None = None) -> str:
    hit, n_hit, false, n_false = rates(found, family)
    return f"{pct(hit)} ({n_hit}) · {pct(false)} ({n_false})"


def timely_cell(found: list[Outcome], family: str) -> str:
    found = [o for o in found if family == "all" or o.model.cell == family]
    hit = [o.timely for o in found if np.isfinite(o.timely) and o.model.harm >= HARMFUL]
    wrong = [o.wrong_now for o in found if o.model.harm < HARMLESS]
    return f"{pct(np.mean(hit) if hit else np.nan)} ({len(hit)}) · " + (
        f"{pct(np.mean(wrong) if wrong else np.nan)} ({len(wrong)})"
    )


def target_cell(found: list[Outcome], family: str) -> str:
    """Issue #26's targets: among models with harm >= 0.25 after the last epoch, the share
    alarmed within `BY_EPOCH` epochs of becoming harmful; among models whose harm stayed below
    0.05 at every epoch of the fit (no shortcut at any time), the share alarmed at any epoch.
    (A model that learned a shortcut and later unlearned it is not a harmless one.)"""
    found = [o for o in found if family == "all" or o.model.cell == family]
    hit = [o.timely for o in found if np.isfinite(o.timely) and o.model.harm >= HARMFUL]
    false = [o.ever for o in found if max(o.model.harm_by_epoch, default=1.0) < HARMLESS]
    mean = lambda x: float(np.mean(x)) if x else float("nan")  # noqa: E731
    return f"{pct(mean(hit))} ({len(hit)}) · {pct(mean(false))} ({len(false)})"


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
        if family is not None and m.cell != family:
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
    families = cells(models, args)
    kinds = [k for k in (*MASK_KINDS, *PROPOSED_KINDS) if any(r[1] == k for r in results)]
    n0 = counts_for("box", args)[0]
    out = []
    rows = []
    for family in families:
        for dose in sorted({m.dose for m in models if m.cell == family}):
            ms = [m for m in models if (m.cell, m.dose) == (family, dose)]
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
    kinds_present = [k for k in (*MASK_KINDS, *PROPOSED_KINDS) if any(r[1] == k for r in results)]
    out.append(
        table(
            f"The issue's targets, {n0} probes: alarmed within {BY_EPOCH} logged epochs of "
            f"becoming harmful, models with harm >= {HARMFUL} (n) · alarmed at any epoch of the "
            f"whole fit, models whose harm stayed < {HARMLESS} at every epoch (n)",
            ["masks", "rule", *cols],
            [
                [kind, rule]
                + [target_cell(outcomes(results, models, rule, kind, n0), f) for f in cols]
                for kind in kinds_present
                for rule in (DEFAULT_RULE, STREAK_RULE, READING_RULE)
            ],
        )
    )
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
    families = cells(models, args)
    for family in families:
        found = [
            o for o in outcomes(results, models, DEFAULT_RULE, "mask", n0) if o.model.cell == family
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
            f"{len(models)} models (seeds {seed_range(models)}), {args.n_train} training "
            f"images; {args.epochs} epochs (synthetic families), {args.photo_epochs} "
            f"(photographic), {args.arch_epochs} (MobileNetV2).\n\n"
        )
        write_section(args.markdown, "bench_detection", head + text, command, load_start)
    if args.plot is not None:
        plot(results, models, args, args.plot)
