"""`tensorboard` with the Saliency tab, also from a checkout not installed with its metadata.

Installing the package (`pip install -e .`) registers the tab through the `tensorboard_plugins`
entry point, and plain `tensorboard --logdir LOGS` shows it. Without the installed metadata
(e.g. running from a source tree on `sys.path`), this launcher adds the plugin's loader to
TensorBoard's own list, once. It takes `tensorboard`'s arguments:

    python scripts/tensorboard_saliency.py --logdir logs
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def plugins() -> list[Any]:
    """TensorBoard's plugins (with the installed entry points) and the Saliency loader, once."""
    from tensorboard import default

    from saliency_callback.tensorboard_plugin.loader import SaliencyLoader

    found = list(default.get_plugins())
    if not any(p is SaliencyLoader or isinstance(p, SaliencyLoader) for p in found):
        found.append(SaliencyLoader)
    return found


def main() -> None:
    from absl import app
    from tensorboard import main_lib, program
    from tensorboard.plugins import base_plugin

    main_lib.global_init()
    tensorboard = program.TensorBoard(plugins=plugins())
    try:
        app.run(tensorboard.main, flags_parser=tensorboard.configure)
    except base_plugin.FlagsError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
