"""The words on the callback's pictures: panel captions and the summary's description."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from saliency_callback.maps.engine import Explanation
from saliency_callback.maps.methods import Method
from saliency_callback.output.render import Renderer
from saliency_callback.shortcuts import background as _background


class Captions:
    """Captions of one model's outputs: class names, confidences, true labels.

    Args:
        head: The explainer's head (`num_classes`, `exact`).
        class_names: Names of the classes, or `None` (their indices are shown).
        labels: The probes' labels as given (for a regression model's `y=`), or `None`.
        label_ids: The probes' class indices, or `None`.
        target: The callback's `target` (a callable target never adds `map=`).
    """

    def __init__(
        self,
        head: Any,
        class_names: Sequence[str] | None,
        labels: np.ndarray | None,
        label_ids: np.ndarray | None,
        target: Any,
    ) -> None:
        self.head = head
        self.class_names = class_names
        self.labels = labels
        self.label_ids = label_ids
        self.target = target

    def name(self, c: int) -> str:
        """The name of class `c` (its index where it has none)."""
        if self.class_names is not None and 0 <= c < len(self.class_names):
            return self.class_names[c]
        return str(c)

    def prediction_texts(self, outputs: np.ndarray) -> list[str]:
        """`"<class> <confidence>"` per row of model outputs (the value for regression)."""
        head = self.head
        if head.num_classes is None or not head.exact:  # regression or unknown head
            return [f"{float(o):.3g}" for o in outputs[:, 0]]
        predicted = _background.predicted_classes(outputs)
        if outputs.shape[1] == 1:
            conf = np.where(predicted == 1, outputs[:, 0], 1.0 - outputs[:, 0])
        else:
            conf = outputs[np.arange(len(outputs)), predicted]
        return [f"{self.name(int(p))} {float(c):.0%}" for p, c in zip(predicted, conf, strict=True)]

    def captions(self, result: Explanation) -> list[str]:
        """One caption per probe: index, true label, prediction, and the explained class."""
        head = self.head
        labels = self.labels
        texts = self.prediction_texts(result.outputs)
        if head.num_classes is None or not head.exact:  # regression or unknown head
            return [
                f"#{i}{f' y={float(np.ravel(labels[i])[0]):.3g}' if labels is not None else ''}"
                f" pred={text}"
                for i, text in enumerate(texts)
            ]
        captions = []
        predicted = _background.predicted_classes(result.outputs)
        for i, text in enumerate(texts):
            truth = ""
            if self.label_ids is not None:
                truth = f" y={self.name(int(self.label_ids[i]))}"
            caption = f"#{i}{truth} pred={text}"
            if int(result.targets[i]) != int(predicted[i]) and not callable(self.target):
                caption += f" map={self.name(int(result.targets[i]))}"
            captions.append(caption)
        return captions


def describe_run(
    n_probes: int,
    method: Method,
    target: Any,
    reduction: str,
    normalize: str,
    renderer: Renderer,
    probe_source: str | None,
) -> str:
    """The Markdown description of the saliency summaries: method, target and display."""
    name = getattr(target, "__name__", None) if callable(target) else None
    target_text = f"callable `{name}`" if name else f"`{target!r}`"
    r = renderer
    return (
        f"Saliency of {n_probes} probes. Method: `{method.describe()}`; "
        f"target: {target_text}; reduction: `{reduction}`; normalize: "
        f"`{normalize}`; Gaussian sigma: {r.sigma:g} px; colormap: `{r.colormap}`; "
        f"alpha: {r.alpha:g}.\n\nEach panel: **image | saliency | overlay**. Caption: "
        "probe index, true label `y`, predicted class and confidence (and `map=` the "
        "explained class when it differs from the prediction)."
        + (f"\n\nProbes from {probe_source}." if probe_source else "")
    )
