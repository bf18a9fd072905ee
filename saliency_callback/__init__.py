"""See what a Keras image model looks at while it trains.

`SaliencyCallback` logs saliency overlays of a fixed probe set to TensorBoard every N epochs;
`compute_saliency` / `Explainer` are the engine behind it; `metrics` measures how much saliency
falls on the object; `datasets` generates a synthetic background-shortcut test bed;
`plot_saliency` draws image | map | overlay in a notebook.

Names and submodules (`saliency_callback.metrics`, ...) are imported on first use, so
`import saliency_callback` (and the command line's `--help`) does not pay for importing
TensorFlow until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it

_EXPORTS = {
    "AlarmEvent": "saliency_callback.alarm",
    "ShortcutAlarm": "saliency_callback.alarm",
    "SaliencyCallback": "saliency_callback.callback",
    "ShortcutData": "saliency_callback.datasets",
    "make_shortcut_data": "saliency_callback.datasets",
    "make_shortcut_splits": "saliency_callback.datasets",
    "ProposedMasks": "saliency_callback.proposals",
    "propose_masks": "saliency_callback.proposals",
    "make_texture_data": "saliency_callback.textures",
    "Explainer": "saliency_callback.engine",
    "Explanation": "saliency_callback.engine",
    "compute_saliency": "saliency_callback.engine",
    "GradCAM": "saliency_callback.methods",
    "IntegratedGradients": "saliency_callback.methods",
    "Method": "saliency_callback.methods",
    "SmoothGrad": "saliency_callback.methods",
    "Vanilla": "saliency_callback.methods",
    "chance_level": "saliency_callback.metrics",
    "mass_in_mask": "saliency_callback.metrics",
    "pointing_game": "saliency_callback.metrics",
    "rank_in_mask": "saliency_callback.metrics",
    "Display": "saliency_callback.options",
    "Runtime": "saliency_callback.options",
    "plot_saliency": "saliency_callback.plotting",
    "Renderer": "saliency_callback.render",
    "ProbeFile": "saliency_callback.probe_file",
    "read_probe_file": "saliency_callback.probe_file",
    "write_probe_file": "saliency_callback.probe_file",
    "BackgroundSwap": "saliency_callback.remedies",
    "HeadRefit": "saliency_callback.remedies",
    "background_swap": "saliency_callback.remedies",
    "cache_masks": "saliency_callback.remedies",
    "refit_head": "saliency_callback.remedies",
}

# The public submodules, reachable as attributes (`saliency_callback.metrics`) without an
# explicit `import saliency_callback.metrics`. They stay out of `__all__`, so that
# `from saliency_callback import *` does not import all of them (and TensorFlow).
_SUBMODULES = (
    "alarm",
    "annotate",
    "background",
    "backends",
    "box_panels",
    "calibration",
    "callback",
    "cli",
    "datasets",
    "engine",
    "epoch_start",
    "explain_files",
    "graph",
    "inputs",
    "loading",
    "methods",
    "metrics",
    "options",
    "plotting",
    "postprocess",
    "probe_file",
    "probes",
    "proposals",
    "remedies",
    "render",
    "report",
    "resume",
    "tensorboard_plugin",
    "textures",
    "timeline",
    "unmeasured",
    "worker",
    "writer",
)

if TYPE_CHECKING:
    from saliency_callback import alarm as alarm
    from saliency_callback import annotate as annotate
    from saliency_callback import backends as backends
    from saliency_callback import background as background
    from saliency_callback import box_panels as box_panels
    from saliency_callback import calibration as calibration
    from saliency_callback import callback as callback
    from saliency_callback import cli as cli
    from saliency_callback import datasets as datasets
    from saliency_callback import engine as engine
    from saliency_callback import epoch_start as epoch_start
    from saliency_callback import explain_files as explain_files
    from saliency_callback import graph as graph
    from saliency_callback import inputs as inputs
    from saliency_callback import loading as loading
    from saliency_callback import methods as methods
    from saliency_callback import metrics as metrics
    from saliency_callback import options as options
    from saliency_callback import plotting as plotting
    from saliency_callback import postprocess as postprocess
    from saliency_callback import probe_file as probe_file
    from saliency_callback import probes as probes
    from saliency_callback import proposals as proposals
    from saliency_callback import remedies as remedies
    from saliency_callback import render as render
    from saliency_callback import report as report
    from saliency_callback import resume as resume
    from saliency_callback import tensorboard_plugin as tensorboard_plugin
    from saliency_callback import textures as textures
    from saliency_callback import timeline as timeline
    from saliency_callback import unmeasured as unmeasured
    from saliency_callback import worker as worker
    from saliency_callback import writer as writer
    from saliency_callback.alarm import AlarmEvent, ShortcutAlarm
    from saliency_callback.callback import SaliencyCallback
    from saliency_callback.datasets import (
        ShortcutData,
        make_shortcut_data,
        make_shortcut_splits,
    )
    from saliency_callback.engine import Explainer, Explanation, compute_saliency
    from saliency_callback.methods import (
        GradCAM,
        IntegratedGradients,
        Method,
        SmoothGrad,
        Vanilla,
    )
    from saliency_callback.metrics import (
        chance_level,
        mass_in_mask,
        pointing_game,
        rank_in_mask,
    )
    from saliency_callback.options import Display, Runtime
    from saliency_callback.plotting import plot_saliency
    from saliency_callback.probe_file import ProbeFile, read_probe_file, write_probe_file
    from saliency_callback.proposals import ProposedMasks, propose_masks
    from saliency_callback.remedies import (
        BackgroundSwap,
        HeadRefit,
        background_swap,
        cache_masks,
        refit_head,
    )
    from saliency_callback.render import Renderer
    from saliency_callback.textures import make_texture_data


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'saliency_callback' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})


__all__ = [
    "AlarmEvent",
    "Display",
    "Explainer",
    "Explanation",
    "GradCAM",
    "IntegratedGradients",
    "Method",
    "ProbeFile",
    "ProposedMasks",
    "Renderer",
    "Runtime",
    "SaliencyCallback",
    "ShortcutAlarm",
    "ShortcutData",
    "SmoothGrad",
    "Vanilla",
    "__version__",
    "chance_level",
    "compute_saliency",
    "make_shortcut_data",
    "make_shortcut_splits",
    "make_texture_data",
    "mass_in_mask",
    "plot_saliency",
    "pointing_game",
    "propose_masks",
    "rank_in_mask",
    "read_probe_file",
    "write_probe_file",
    "BackgroundSwap",
    "HeadRefit",
    "background_swap",
    "cache_masks",
    "refit_head",
]
