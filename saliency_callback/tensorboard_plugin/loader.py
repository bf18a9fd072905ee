"""The entry point TensorBoard loads: imports nothing that can fail.

TensorBoard 2.16-2.20 resolve `tensorboard_plugins` entry points with `pkg_resources` and no
`try`/`except` (2.21 with `importlib.metadata`): an exception raised while importing this module
would stop TensorBoard itself. So this module imports only TensorBoard's `base_plugin` and the
standard library; the plugin (NumPy-free, but with Pillow, protobuf and this package's alarm
table) is imported in `SaliencyLoader.load`, which logs any failure and returns `None`, so that
TensorBoard starts without the tab rather than not at all.
"""

from __future__ import annotations

import logging
from typing import Any

from tensorboard.plugins import base_plugin

logger = logging.getLogger(__name__)
PLUGIN_MODULE = "saliency_callback.tensorboard_plugin.plugin"


class SaliencyLoader(base_plugin.TBLoader):
    """Loads the Saliency tab (`plugin.SaliencyPlugin`); on any error, logs it and loads nothing."""

    module = PLUGIN_MODULE

    def load(self, context: Any) -> Any:
        try:
            import importlib

            plugin = importlib.import_module(self.module).SaliencyPlugin(context)
        except Exception:
            logger.error(
                "The Saliency tab (saliency_callback) could not be loaded; TensorBoard starts "
                "without it.",
                exc_info=True,
            )
            return None
        return plugin
