"""The remedy benchmark's tables and plot (`bench_fix.py`): ground truth per family and remedy,
the share of the worst-group gap each remedy recovers, what the library's background tests said
before and after, and the issue's targets. No training, no model calls: it reads the results."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _markdown import markers, table, write_section

REMEDIES = ("shortcut", "clean", "swap (masks)", "swap (proposed)", "refit (masks)")
FIXES = ("swap (masks)", "swap (proposed)", "refit (masks)")
SWAPS = ("swap (masks)", "swap (proposed)")
BEGIN, END = markers("bench_fix")
RECOVERY_TARGET, AGREE_COST, TIME_COST, SILENT_TARGET = 0.8, 0.02, 0.15, 0.9
HARMLESS, HARMFUL = 0.05, 0.25
MIN_GAP = 0.05  # a shortcut this close to its clean twin leaves no gap to recover


def pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{100 * x:.0f}%"


def mean_sd(values: Sequence[float]) -> str:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return "-"
    return f"{v.mean():.2f}" if len(v) == 1 else f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"


def mean_sds(results: list[Any], *fields: str) -> list[str]:
    """`mean_sd` of each named field (or property) of the results."""
    return [mean_sd([getattr(r, field) for r in results]) for field in fields]


def _mean(results: list[Any], field: Callable[[Any], float]) -> float:
    values = np.array([field(r) for r in results], np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def select(results: list[Any], family: str, remedy: str) -> list[Any]:
    return [r for r in results if r.family == family and r.remedy == remedy]


def families_of(results: list[Any], args: argparse.Namespace) -> list[str]:
    return [f for f in args.families if any(r.family == f for r in results)]


def base(arm: str) -> str:
    """The remedy of an arm: `swap (masks, p=0.2)` -> `swap (masks)`."""
    return arm.split(", p=")[0] + ")" if ", p=" in arm else arm


def remedies_of(results: list[Any]) -> list[str]:
    """The arms found, in `REMEDIES` order, swaps by swap probability."""

    def order(arm: str) -> tuple[int, float]:
        p = float(arm.rsplit("p=", 1)[1].rstrip(")")) if ", p=" in arm else 0.0
        return REMEDIES.index(base(arm)), p

    return sorted({r.remedy for r in results}, key=order)


def cells(results: list[Any], args: argparse.Namespace) -> Iterator[tuple[str, str, list[Any]]]:
    """Each family and arm that has results, with its results: the tables' and the plot's rows."""
    for family in families_of(results, args):
        for remedy in remedies_of(results):
            found = select(results, family, remedy)
            if found:
                yield family, remedy, found


def recovery(results: list[Any], family: str, remedy: str) -> float:
    """`(wg_fixed - wg_shortcut) / (wg_clean - wg_shortcut)` from the means over seeds; NaN
    where the clean twin or the remedy is missing, or the gap is below `MIN_GAP`."""
    wg = {
        m: _mean(select(results, family, m), lambda r: r.acc_disagree)
        for m in ("shortcut", "clean", remedy)
    }
    gap = wg["clean"] - wg["shortcut"]
    if not np.isfinite(gap) or gap < MIN_GAP:
        return float("nan")
    return (wg[remedy] - wg["shortcut"]) / gap


def time_overhead(results: list[Any], family: str, remedy: str) -> float:
    """The time a remedy adds to the shortcut model's fit, as a share of it: a swap's fit
    against the plain fit, or the refit's whole time (it comes after the plain fit)."""
    plain = _mean(select(results, family, "shortcut"), lambda r: r.fit_s)
    spent = _mean(select(results, family, remedy), lambda r: r.fit_s)
    return spent / plain if remedy.startswith("refit") else spent / plain - 1


def agree_cost(results: list[Any], families: list[str], reference: str, remedy: str) -> float:
    """The largest drop, over families, of the accuracy where the cue agrees, from `reference`
    to `remedy` (means over seeds)."""
    drops = [
        _mean(select(results, f, reference), lambda r: r.acc_agree)
        - _mean(select(results, f, remedy), lambda r: r.acc_agree)
        for f in families
    ]
    return max(drops) if drops else float("nan")


def truth_table(results: list[Any], args: argparse.Namespace) -> str:
    rows = []
    for family, remedy, found in cells(results, args):
        overhead = time_overhead(results, family, remedy)
        rows.append(
            [
                family,
                remedy,
                *mean_sds(found, "acc_disagree", "acc_agree", "harm"),
                f"{_mean(found, lambda r: r.fit_s):.1f} s",
                "-" if remedy in ("shortcut", "clean") else f"{100 * overhead:+.0f}%",
                "-" if base(remedy) not in SWAPS else f"{_mean(found, lambda r: r.setup_s):.1f} s",
                len(found),
            ]
        )
    header = [
        "family",
        "remedy",
        "worst-group acc",
        "acc where cue agrees",
        "harm",
        "fit time",
        "vs shortcut",
        "masks + backgrounds (once)",
        "seeds",
    ]
    return (
        "### Measured without the library: worst-group accuracy, accuracy where the cue "
        "agrees, harm, time\n\n"
        "Means ± standard deviation over seeds, on 600 test images (the cue agreeing on half). "
        "Fit time: `model.fit` alone (for the refit: `refit_head`); the swaps' masks "
        "(proposed: `cache_masks`) and object-removed backgrounds are computed once, before.\n\n"
        + table(header, rows)
    )


def recovery_table(results: list[Any], args: argparse.Namespace) -> str:
    families = families_of(results, args)
    rows = []
    for remedy in [m for m in remedies_of(results) if base(m) in FIXES]:
        rows.append([remedy, *(pct(recovery(results, f, remedy)) for f in families)])
    return (
        "### Share of the worst-group gap recovered\n\n"
        "`(wg_fixed - wg_shortcut) / (wg_clean - wg_shortcut)`, from the means over seeds "
        f"(`-`: the shortcut model is within {MIN_GAP} of its clean twin, no gap to recover). "
        f"Target: at least {pct(RECOVERY_TARGET)} for the swaps.\n\n"
        + table(["remedy", *families], rows)
    )


def library_table(results: list[Any], args: argparse.Namespace) -> str:
    rows = [
        [
            family,
            remedy,
            *mean_sds(found, "harm", "harm_est", "harm_low"),
            f"{sum(r.alarm for r in found)}/{len(found)}",
        ]
        for family, remedy, found in cells(results, args)
    ]
    header = ["family", "remedy", "measured harm", "harm estimate", "harm_low", "alarm fires"]
    return (
        "### What the library said: the background tests before and after the fix\n\n"
        "`background.BackgroundTest` and `score` on 16 held-out probes drawn like the training "
        "data, exact masks and labels; the default alarm fires where `harm_low > 0.05`. "
        "`shortcut` is before the fix.\n\n" + table(header, rows)
    )


def targets_table(results: list[Any], args: argparse.Namespace) -> str:
    families = families_of(results, args)
    rows = []
    for remedy in [m for m in remedies_of(results) if base(m) in FIXES]:
        rec = [recovery(results, f, remedy) for f in families]
        finite = [x for x in rec if np.isfinite(x)]
        worst = min(finite) if finite else float("nan")

        vs_shortcut = agree_cost(results, families, "shortcut", remedy)
        vs_clean = agree_cost(results, families, "clean", remedy)
        overhead = max(time_overhead(results, f, remedy) for f in families)
        harmless = [r for r in results if r.remedy == remedy and r.harm < HARMLESS]
        silent = sum(not r.alarm for r in harmless) / len(harmless) if harmless else np.nan
        harmful = [r for r in results if r.remedy == remedy and r.harm >= HARMFUL]
        fired = sum(r.alarm for r in harmful) / len(harmful) if harmful else np.nan

        def verdict(ok: bool, value: float) -> str:
            return "-" if not np.isfinite(value) else ("yes" if ok else "no")

        rows += [
            [
                remedy,
                f"recovers >= {pct(RECOVERY_TARGET)} of the worst-group gap in every family",
                f"lowest {pct(worst)}",
                verdict(worst >= RECOVERY_TARGET, worst),
            ],
            [
                remedy,
                f"costs <= {100 * AGREE_COST:.0f} points where the cue agrees (vs the shortcut)",
                f"largest {100 * vs_shortcut:+.1f} points",
                verdict(vs_shortcut <= AGREE_COST, vs_shortcut),
            ],
            [
                remedy,
                "the same, against the clean twin (the accuracy without the cue's help)",
                f"largest {100 * vs_clean:+.1f} points",
                verdict(vs_clean <= AGREE_COST, vs_clean),
            ],
            [
                remedy,
                f"adds <= {pct(TIME_COST)} to the fit time (masks cached)",
                f"largest {100 * overhead:+.0f}%",
                verdict(overhead <= TIME_COST, overhead),
            ],
            [
                remedy,
                f"alarm silent on >= {pct(SILENT_TARGET)} of fixed models with harm < 0.05",
                f"{pct(silent)} of {len(harmless)}",
                verdict(silent >= SILENT_TARGET, silent),
            ],
            [
                remedy,
                f"(no target) alarm fires on fixed models still harmful (harm >= {HARMFUL})",
                f"{pct(fired)} of {len(harmful)}",
                "-",
            ],
        ]
    return (
        "### The issue's targets\n\n"
        "Per remedy, over the families above (the refit is measured like the swaps; the targets "
        "are the swaps'). `p=0` training bitwise identical to training without the remedy is "
        "checked by `tests/remedies/test_remedies.py`.\n\n"
        + table(["remedy", "target", "measured", "met"], rows)
    )


def tables(results: list[Any], args: argparse.Namespace) -> list[str]:
    return [
        truth_table(results, args),
        recovery_table(results, args),
        library_table(results, args),
        targets_table(results, args),
    ]


MARKERS = ("x", "*", "o", "s", "D", "v", "P", "X", "<", ">", "^", "h", "p", "d")


def plot(results: list[Any], args: argparse.Namespace, path: Path) -> None:
    """Worst-group accuracy against accuracy where the cue agrees: one colour per family, one
    marker per remedy, means over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    colours = plt.get_cmap("tab10")
    arms = remedies_of(results)
    marker = {arm: MARKERS[i % len(MARKERS)] for i, arm in enumerate(arms)}
    families = families_of(results, args)
    for family, remedy, found in cells(results, args):
        x = _mean(found, lambda r: r.acc_disagree)
        y = _mean(found, lambda r: r.acc_agree)
        ax.scatter(x, y, color=colours(families.index(family)), marker=marker[remedy], s=60)
    for i, family in enumerate(families):
        ax.scatter([], [], color=colours(i), marker="o", label=family)
    for remedy in arms:
        ax.scatter([], [], color="0.3", marker=marker[remedy], label=remedy)
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("worst-group accuracy (cue disagrees)")
    ax.set_ylabel("accuracy where the cue agrees")
    ax.set_title(f"Remedies at cue share {args.dose} (means over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(results: list[Any], args: argparse.Namespace, command: str, load_start: float) -> None:
    text = "\n".join(tables(results, args))
    print("\n" + text)
    if args.markdown is not None:
        seeds = sorted({r.seed for r in results})
        head = (
            f"{len(results)} models (seeds {seeds[0]}-{seeds[-1]}), cue share {args.dose}, "
            f"p in {args.p}, {args.n_train} training images, {args.n_heldout} held-out images for "
            f"the refit; {args.epochs} epochs (synthetic families), {args.photo_epochs} "
            "(photographic).\n\n"
        )
        write_section(args.markdown, "bench_fix", head + text, command, load_start)
    if args.plot is not None:
        plot(results, args, args.plot)
