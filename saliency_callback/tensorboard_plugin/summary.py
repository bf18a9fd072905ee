"""What the dashboard shows for one run, from the summaries the callback wrote (`RunData`).

Generic over the `saliency/...` scalars it finds: the known signals come first (the recommended
alarm's signal first), then any other scalar, alphabetically. Series that belong to another
one are attached to it instead of getting a chart of their own:

- `<signal>_low` / `<signal>_high`: a band (e.g. the calibrated alarm's bounds on the harm);
- `<signal>_chance` (or the chance level the alarm's table names): a dashed reference line;
- `alarm_limit/<signal>`: the alarm's threshold on that signal at each logged step;
- `<signal>/probe_NN`: per-probe values, shown in a cell's panel, not as curves.

`saliency/alarm` (1 where the alarm fired, 0 where it judged the step clear, absent where it
could not judge it), `saliency/alarm_message` (its explanation) and `saliency/nonfinite`
(epochs whose outputs were NaN) make the verdict and the marks. An alarm that could not judge
its latest step (e.g. a harm resting on fewer than 2 probes, `saliency/background/harm_probes`)
says "cannot tell", never "no alarm" (`saliency_callback.shortcuts.unmeasured`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from saliency_callback.shortcuts.alarm import DEFAULT_MONITOR, MONITORS
from saliency_callback.shortcuts.unmeasured import HARM_PROBES, MIN_HARM_PROBES, judge
from saliency_callback.tensorboard_plugin.events import PREFIX, RunData

PROBES = PREFIX + "probes"
BACKGROUND = PREFIX + "background"
OVERVIEW = PREFIX + "overview"
ALARM_MESSAGE = PREFIX + "alarm_message"
NONFINITE = PREFIX + "nonfinite"
HARM = "background/harm"
_PER_PROBE = re.compile(r"^(?P<base>.+)/probe_(?P<index>\d+)$")

# signal -> (label, unit: "fraction" is shown in %, "value" as a number, what it measures)
KNOWN: dict[str, tuple[str, str, str]] = {
    "background/reliance": (
        "Background reliance",
        "fraction",
        "on swapped composites, how much more often the prediction follows the background's "
        "probe than the object's",
    ),
    "background/flip_rate": (
        "Flip rate",
        "fraction",
        "background swaps that change the prediction",
    ),
    HARM: ("Estimated harm", "fraction", "accuracy lost where the background disagrees"),
    HARM_PROBES: (
        "Probes under the harm",
        "value",
        f"probes the harm estimate rests on (its bounds need {MIN_HARM_PROBES})",
    ),
    "background/gap": ("Background gap", "fraction", "accuracy lost on swapped backgrounds"),
    "mass_in_mask": ("Mass in mask", "fraction", "share of the saliency inside the object masks"),
    "pointing_game": ("Pointing game", "fraction", "probes whose saliency peak is on the object"),
    "rank_in_mask": ("Rank in mask", "fraction", "how high the object's pixels rank in saliency"),
    "hotspot": ("Hotspot", "value", "saliency piling up at the same pixels on every probe"),
    "probe_accuracy": ("Probe accuracy", "fraction", "accuracy on the probes"),
    "background/only_bg_accuracy": ("Only-background accuracy", "fraction", "object removed"),
    "background/only_fg_accuracy": ("Only-object accuracy", "fraction", "background removed"),
    "background/mixed_rand_accuracy": (
        "Swapped-background accuracy",
        "fraction",
        "object on another probe's background",
    ),
    "background/mixed_same_accuracy": (
        "Same-class-background accuracy",
        "fraction",
        "object on a background of its class",
    ),
    "background/swap_change": ("Swap change", "value", "regression output change on swaps"),
    "background/accuracy": ("Accuracy (background tests)", "fraction", "on the originals"),
    "confidence": ("Mean confidence", "fraction", "model output for the explained class"),
}
# The chance level drawn under a signal: signal -> the scalar holding it.
CHANCE = {
    "mass_in_mask": "mass_in_mask_chance",
    "pointing_game": "mass_in_mask_chance",
    "rank_in_mask": "mass_in_mask_chance",
    "hotspot": "hotspot_chance",
    "background/only_bg_accuracy": "background/only_bg_chance",
    "background/only_fg_accuracy": "background/only_bg_chance",
    "background/mixed_rand_accuracy": "background/only_bg_chance",
    "background/mixed_same_accuracy": "background/only_bg_chance",
    "probe_accuracy": "background/only_bg_chance",
}
_NOT_CURVES = {"alarm", "nonfinite"}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _points(series: dict[int, float]) -> list[list[Any]]:
    return [[step, _finite(series[step])] for step in sorted(series)]


def _order(name: str) -> tuple[int, str]:
    known = list(KNOWN)
    if name == DEFAULT_MONITOR:
        return (-1, name)
    return (known.index(name), name) if name in known else (len(known), name)


def signals(data: RunData) -> list[dict[str, Any]]:
    """One entry per curve: its points, band, chance line, alarm limit and side."""
    names = {tag.removeprefix(PREFIX): series for tag, series in data.scalars.items()}
    attached = set()
    for name in names:
        if _PER_PROBE.match(name) or name.startswith("alarm_limit/"):
            attached.add(name)
        for suffix in ("_low", "_high", "_chance"):
            if name.endswith(suffix) and name.removesuffix(suffix) in names:
                attached.add(name)
    attached |= {CHANCE[n] for n in names if n in CHANCE and CHANCE[n] in names}
    out = []
    for name in sorted(set(names) - attached - _NOT_CURVES, key=_order):
        label, unit, hint = KNOWN.get(name, (name, "value", ""))
        low, high = names.get(name + "_low"), names.get(name + "_high")
        chance = names.get(name + "_chance") or names.get(CHANCE.get(name, ""))
        # An alarm on a bound (the calibrated alarm watches `harm_low`) draws on its curve.
        limit = names.get("alarm_limit/" + name) or names.get("alarm_limit/" + name + "_low")
        out.append(
            {
                "name": name,
                "tag": PREFIX + name,
                "label": label,
                "hint": hint,
                "unit": unit,
                "side": MONITORS.get(name, (None, None))[0],
                "points": _points(names[name]),
                "band": {"low": _points(low), "high": _points(high)} if low and high else None,
                "chance": _points(chance) if chance else None,
                "limit": _points(limit) if limit else None,
            }
        )
    return out


def per_probe(data: RunData, probe: int, step: int) -> list[dict[str, Any]]:
    """The per-probe scalars (`<signal>/probe_NN`) of one probe at one step."""
    out = []
    for tag, series in sorted(data.scalars.items()):
        m = _PER_PROBE.match(tag.removeprefix(PREFIX))
        if m and int(m["index"]) == probe and step in series:
            base = m["base"]
            label, unit, _ = KNOWN.get(base, (base, "value", ""))
            out.append({"name": base, "label": label, "unit": unit, "value": _finite(series[step])})
    return out


def verdict(data: RunData) -> dict[str, Any]:
    """The alarm's state: fired (when first, its message), clear, cannot tell, or not
    configured (`saliency_callback.shortcuts.unmeasured.judge`), with the harm at its latest
    step."""
    messages = data.texts.get(ALARM_MESSAGE, {})
    probes = max((ref.samples for ref in data.images.get(PROBES, {}).values()), default=0)
    result = judge(data.scalars, messages, probes)
    result["messages"] = [[s, messages[s]] for s in sorted(messages)]
    return result


def image_steps(data: RunData, tag: str) -> list[dict[str, Any]]:
    refs = data.images.get(tag, {})
    return [
        {"step": s, "samples": refs[s].samples, "version": refs[s].version} for s in sorted(refs)
    ]


def run_summary(run: str, data: RunData) -> dict[str, Any]:
    """The JSON of `/run`: everything the tab draws for one run, but the pictures."""
    steps = image_steps(data, PROBES)
    curves = signals(data)
    watched = verdict(data)
    monitor = watched["monitor"] or ""
    base = monitor.removesuffix("_low").removesuffix("_high")
    curves.sort(key=lambda c: c["name"] not in (monitor, base))  # the alarm's signal first
    return {
        "run": run,
        "steps": steps,
        "probes": max((s["samples"] for s in steps), default=0),
        "background": {s["step"]: s for s in image_steps(data, BACKGROUND)},
        "signals": curves,
        "verdict": watched,
        "nonfinite": sorted(s for s, v in data.scalars.get(NONFINITE, {}).items() if v >= 0.5),
        "descriptions": data.descriptions,
    }
