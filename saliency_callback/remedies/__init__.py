"""After the alarm: remedies for a background shortcut.

- `BackgroundSwap` (NumPy arrays, a `keras.utils.PyDataset`) and `background_swap`
  (`tf.data`): background-swap training, the Backgrounds Challenge's Mixed-Rand used on a share
  `p` of training images (Xiao et al. 2021; Ryali et al. 2021);
- `cache_masks`: object masks for every training image, proposed once (`propose_masks`) and
  cached on disk;
- `refit_head`: Deep Feature Reweighting (Kirichenko et al. 2022), the last `Dense` layer
  refitted on background-swapped composites of held-out images, nothing else touched.

Whether a remedy worked is measured on images it never saw: the callback's background tests on
held-out probes, and accuracy where the cue disagrees (`benchmarks/bench_fix.py`).
"""

from __future__ import annotations

from saliency_callback.remedies.head import HeadRefit, refit_head
from saliency_callback.remedies.mask_cache import cache_masks
from saliency_callback.remedies.swap import BackgroundSwap
from saliency_callback.remedies.swap_dataset import background_swap

__all__ = [
    "BackgroundSwap",
    "HeadRefit",
    "background_swap",
    "cache_masks",
    "refit_head",
]
