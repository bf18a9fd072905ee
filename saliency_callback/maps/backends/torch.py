"""The PyTorch backend: `torch.autograd.grad`, run eagerly.

Gradients are taken with `torch.autograd.grad` w.r.t. the inputs (or the Grad-CAM layer's
activations) only, under `torch.enable_grad()` with `training=False`: nothing is written to the
parameters' `.grad` and no `.backward()` is called. Tensors are placed with
`keras.ops.convert_to_tensor`, i.e. on Keras's device. Nothing is compiled (`torch.compile`
would add minutes of compilation for a computation run once per epoch), so `tracing_count` is 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from keras import ops as K

from saliency_callback.maps.backends._keras_ops import KerasGradientOps, check_target_fn

__all__ = [
    "GradientOps",
    "check_target_fn",
    "compile_forward",
    "compile_step",
    "to_device",
    "to_numpy",
    "tracing_count",
]


class GradientOps(KerasGradientOps):
    """Backend operations the methods call inside the step (see `backends`)."""

    def _watched(self, x: Any) -> Any:
        return x.detach().requires_grad_(True)

    def input_gradients(self, x: Any, targets: Any) -> tuple[Any, Any, Any]:
        with torch.enable_grad():
            x = self._watched(x)
            logits, _ = self.logits(x)
            resolved = self.resolve_targets(logits.detach(), targets)
            score = self.scores(logits, resolved).sum()
            (grads,) = torch.autograd.grad(score, [x])
        return grads, logits.detach(), resolved

    def layer_gradients(self, x: Any, targets: Any) -> tuple[Any, Any, Any, Any]:
        with torch.enable_grad():
            # The input is watched too, so the activations are in the autograd graph even when
            # every layer before them is frozen.
            logits, acts = self.logits(self._watched(x))
            if acts is None:
                raise ValueError("Grad-CAM needs a layer; the engine was built without one.")
            resolved = self.resolve_targets(logits.detach(), targets)
            score = self.scores(logits, resolved).sum()
            (grads,) = torch.autograd.grad(score, [acts])
        return acts.detach(), grads, logits.detach(), resolved


def to_device(x: np.ndarray) -> Any:
    """Sends a numpy array to Keras's device once (the steps gather their chunks from it)."""
    return K.convert_to_tensor(x)


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _index(x_all: Any, index: Any) -> Any:
    return torch.as_tensor(np.asarray(index), dtype=torch.long, device=x_all.device)


def compile_step(
    point: Callable[..., tuple[Any, Any, Any]],
    ops: GradientOps,
    image_shape: tuple[int, ...],
    points: int = 1,
    chunk: int | None = None,
) -> Any:
    """One chunk of a method's work (eager; same contract as the TF module's)."""

    def step(x_all: Any, index: Any, point_index: Any, t_all: Any) -> tuple[Any, Any, Any]:
        with torch.no_grad():  # only the explicit autograd.grad calls build a graph
            idx = _index(x_all, index)
            p = K.convert_to_tensor(np.asarray(point_index, np.int32))
            contrib, logits, resolved = point(ops, x_all[idx], t_all[idx], p)
            contrib = contrib.detach().float()
            if points > 1:
                segments = idx - idx[0]
                rows = int(segments[-1]) + 1
                summed = torch.zeros((rows, *contrib.shape[1:]), device=contrib.device)
                contrib = summed.index_add_(0, segments, contrib)
        return contrib, logits, resolved

    return step


def compile_forward(ops: GradientOps, image_shape: tuple[int, ...], chunk: int | None = None):
    """A forward pass of the images `index` of `x_all`: pre-activation outputs and targets."""

    def forward(x_all: Any, index: Any, t_all: Any) -> tuple[Any, Any]:
        with torch.no_grad():
            idx = _index(x_all, index)
            logits, _ = ops.logits(x_all[idx])
            return logits, ops.resolve_targets(logits, t_all[idx])

    return forward


def tracing_count(fn: Any) -> int:
    """Always 0: the torch steps run eagerly, nothing is traced."""
    return 0
