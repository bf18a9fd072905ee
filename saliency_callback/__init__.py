"""See what a Keras image model looks at while it trains.

`SaliencyCallback` logs saliency overlays of a fixed probe set to TensorBoard every N epochs;
`compute_saliency` / `Explainer` are the engine behind it; `metrics` measures how much saliency
falls on the object; `datasets` generates a synthetic background-shortcut test bed;
`plot_saliency` draws image | map | overlay in a notebook.

Names and submodules (`saliency_callback.maps.metrics`, ...) are imported on first use, so
`import saliency_callback` (and the command line's `--help`) does not pay for importing
TensorFlow until something needs it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it

_EXPORTS = {
    "AlarmEvent": "saliency_callback.shortcuts.alarm",
    "ShortcutAlarm": "saliency_callback.shortcuts.alarm",
    "SaliencyCallback": "saliency_callback.training.callback",
    "ShortcutData": "saliency_callback.data.datasets",
    "make_shortcut_data": "saliency_callback.data.datasets",
    "make_shortcut_splits": "saliency_callback.data.datasets",
    "ProposedMasks": "saliency_callback.shortcuts.proposals",
    "propose_masks": "saliency_callback.shortcuts.proposals",
    "make_texture_data": "saliency_callback.data.textures",
    "Explainer": "saliency_callback.maps.engine",
    "Explanation": "saliency_callback.maps.engine",
    "compute_saliency": "saliency_callback.maps.engine",
    "GradCAM": "saliency_callback.maps.methods",
    "IntegratedGradients": "saliency_callback.maps.methods",
    "Method": "saliency_callback.maps.methods",
    "SmoothGrad": "saliency_callback.maps.methods",
    "Vanilla": "saliency_callback.maps.methods",
    "chance_level": "saliency_callback.maps.metrics",
    "mass_in_mask": "saliency_callback.maps.metrics",
    "pointing_game": "saliency_callback.maps.metrics",
    "rank_in_mask": "saliency_callback.maps.metrics",
    "Display": "saliency_callback.training.options",
    "Runtime": "saliency_callback.training.options",
    "plot_saliency": "saliency_callback.output.plotting",
    "Renderer": "saliency_callback.output.render",
    "ProbeFile": "saliency_callback.data.probe_file",
    "read_probe_file": "saliency_callback.data.probe_file",
    "write_probe_file": "saliency_callback.data.probe_file",
    "BackgroundSwap": "saliency_callback.remedies",
    "HeadRefit": "saliency_callback.remedies",
    "background_swap": "saliency_callback.remedies",
    "cache_masks": "saliency_callback.remedies",
    "refit_head": "saliency_callback.remedies",
}

# The rooms (`saliency_callback.maps`, ...; see docs/layout.md) and the public submodules
# outside them, reachable as attributes without an explicit import. They stay out of `__all__`,
# so that `from saliency_callback import *` does not import all of them (and TensorFlow).
_SUBMODULES = (
    "commands",
    "data",
    "maps",
    "output",
    "remedies",
    "shortcuts",
    "tensorboard_plugin",
    "training",
)

# Where each module of the flat layout (before 0.2) lives now. The old paths keep working, as
# attributes (`saliency_callback.metrics`) and as imports (`import saliency_callback.metrics`,
# `from saliency_callback.background import ...`, modules inside a moved package too): each
# gives the very module object of its new path, so patching one patches the other.
_MOVED = {
    "_cli_common": "commands._common",
    "alarm": "shortcuts.alarm",
    "annotate": "commands.annotate",
    "backends": "maps.backends",
    "background": "shortcuts.background",
    "box_panels": "output.box_panels",
    "calibration": "shortcuts.calibration",
    "callback": "training.callback",
    "cli": "commands.cli",
    "datasets": "data.datasets",
    "engine": "maps.engine",
    "epoch_start": "training.epoch_start",
    "explain_files": "commands.explain_files",
    "graph": "maps.graph",
    "inputs": "maps.inputs",
    "loading": "data.loading",
    "methods": "maps.methods",
    "metrics": "maps.metrics",
    "options": "training.options",
    "plotting": "output.plotting",
    "postprocess": "maps.postprocess",
    "probe_file": "data.probe_file",
    "probes": "data.probes",
    "proposals": "shortcuts.proposals",
    "render": "output.render",
    "report": "output.report",
    "resume": "training.resume",
    "textures": "data.textures",
    "timeline": "output.timeline",
    "unmeasured": "shortcuts.unmeasured",
    "worker": "training.worker",
    "writer": "output.writer",
}


def _new_path(fullname: str) -> str | None:
    """`saliency_callback.<new path>` for a module of the flat layout (or one inside it)."""
    package, _, name = fullname.partition(".")
    first, dot, rest = name.partition(".")
    if package != __name__ or first not in _MOVED:
        return None
    return f"{__name__}.{_MOVED[first]}{dot}{rest}"


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `saliency_callback.<old>[.<sub>]` as the module at its new path (`_MOVED`)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if _new_path(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> None:
        return None  # a placeholder, replaced in `sys.modules` by `exec_module`

    def exec_module(self, module: Any) -> None:
        # The import system returns what `sys.modules` holds after this: the moved module.
        sys.modules[module.__name__] = importlib.import_module(str(_new_path(module.__name__)))


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())  # before the path finder, which would load a copy

if TYPE_CHECKING:
    from saliency_callback import commands as commands
    from saliency_callback import data as data
    from saliency_callback import maps as maps
    from saliency_callback import output as output
    from saliency_callback import remedies as remedies
    from saliency_callback import shortcuts as shortcuts
    from saliency_callback import tensorboard_plugin as tensorboard_plugin
    from saliency_callback import training as training
    from saliency_callback.commands import annotate as annotate
    from saliency_callback.commands import cli as cli
    from saliency_callback.commands import explain_files as explain_files
    from saliency_callback.data import datasets as datasets
    from saliency_callback.data import loading as loading
    from saliency_callback.data import probe_file as probe_file
    from saliency_callback.data import probes as probes
    from saliency_callback.data import textures as textures
    from saliency_callback.data.datasets import (
        ShortcutData,
        make_shortcut_data,
        make_shortcut_splits,
    )
    from saliency_callback.data.probe_file import ProbeFile, read_probe_file, write_probe_file
    from saliency_callback.data.textures import make_texture_data as make_texture_data
    from saliency_callback.maps import backends as backends
    from saliency_callback.maps import engine as engine
    from saliency_callback.maps import graph as graph
    from saliency_callback.maps import inputs as inputs
    from saliency_callback.maps import methods as methods
    from saliency_callback.maps import metrics as metrics
    from saliency_callback.maps import postprocess as postprocess
    from saliency_callback.maps.engine import Explainer, Explanation, compute_saliency
    from saliency_callback.maps.methods import (
        GradCAM,
        IntegratedGradients,
        Method,
        SmoothGrad,
        Vanilla,
    )
    from saliency_callback.maps.metrics import (
        chance_level,
        mass_in_mask,
        pointing_game,
        rank_in_mask,
    )
    from saliency_callback.output import box_panels as box_panels
    from saliency_callback.output import plotting as plotting
    from saliency_callback.output import render as render
    from saliency_callback.output import report as report
    from saliency_callback.output import timeline as timeline
    from saliency_callback.output import writer as writer
    from saliency_callback.output.plotting import plot_saliency as plot_saliency
    from saliency_callback.output.render import Renderer
    from saliency_callback.remedies import (
        BackgroundSwap,
        HeadRefit,
        background_swap,
        cache_masks,
        refit_head,
    )
    from saliency_callback.shortcuts import alarm as alarm
    from saliency_callback.shortcuts import background as background
    from saliency_callback.shortcuts import calibration as calibration
    from saliency_callback.shortcuts import proposals as proposals
    from saliency_callback.shortcuts import unmeasured as unmeasured
    from saliency_callback.shortcuts.alarm import AlarmEvent, ShortcutAlarm
    from saliency_callback.shortcuts.proposals import ProposedMasks, propose_masks
    from saliency_callback.training import callback as callback
    from saliency_callback.training import epoch_start as epoch_start
    from saliency_callback.training import options as options
    from saliency_callback.training import resume as resume
    from saliency_callback.training import worker as worker
    from saliency_callback.training.callback import SaliencyCallback
    from saliency_callback.training.options import Display, Runtime


_NO_TENSORFLOW = (
    "saliency_callback: Keras's backend is 'tensorflow' (the default; KERAS_BACKEND or "
    "~/.keras/keras.json) but TensorFlow is not installed. Run "
    '`pip install "saliency_callback[tensorflow]"`, or use another backend: '
    '`pip install "saliency_callback[jax]"` and KERAS_BACKEND=jax (or [torch] and '
    "KERAS_BACKEND=torch)."
)


def __getattr__(name: str) -> Any:
    try:
        return _load(name)
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("tensorflow"):
            raise
        raise ModuleNotFoundError(_NO_TENSORFLOW, name="tensorflow") from error


def _load(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _MOVED:
        value = importlib.import_module(f"{__name__}.{_MOVED[name]}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'saliency_callback' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})  # the flat paths (`_MOVED`) work, unlisted


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
