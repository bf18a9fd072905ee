"""The public surface: every name in `__all__` resolves, and importing is cheap."""

from __future__ import annotations

import subprocess
import sys

import saliency_callback as sc


def test_every_public_name_resolves():
    for name in sc.__all__:
        assert getattr(sc, name) is not None, name
    assert set(dir(sc)) == set(sc.__all__)


def test_import_does_not_load_tensorflow():
    code = "import sys, saliency_callback; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
