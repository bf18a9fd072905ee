"""The public surface: every name in `__all__` resolves, and importing is cheap."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import saliency_callback as sc


def public_submodules() -> set[str]:
    """The package's modules on disk, less the private (`_x`) and dunder ones."""
    return {m.name for m in pkgutil.iter_modules(sc.__path__) if not m.name.startswith("_")}


def test_every_public_name_resolves():
    for name in sc.__all__:
        assert getattr(sc, name) is not None, name
    # `__all__` holds the names (not the submodules); `dir()` shows both.
    assert not set(sc.__all__) & public_submodules()
    assert set(dir(sc)) == set(sc.__all__) | public_submodules()


def test_every_public_submodule_is_an_attribute_of_a_freshly_imported_package():
    # One fresh interpreter; before each submodule the package is forgotten and imported
    # again, so every attribute access goes through the lazy path (checked: not yet imported).
    code = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    for key in [k for k in sys.modules if k.split(".")[0] == "saliency_callback"]:
        del sys.modules[key]
    sc = importlib.import_module("saliency_callback")
    full = "saliency_callback." + name
    assert full not in sys.modules, full
    assert getattr(sc, name) is sys.modules[full], name
import saliency_callback as sc
assert sc.metrics.mass_in_mask is sc.mass_in_mask
try:
    sc.no_such_module
except AttributeError as e:
    assert "no_such_module" in str(e)
else:
    raise AssertionError("sc.no_such_module resolved")
assert not hasattr(sc, "__main__")
print("ok")
"""
    names = json.dumps(sorted(public_submodules()))
    out = subprocess.run(
        [sys.executable, "-c", code, names], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"


def test_import_does_not_load_tensorflow():
    code = "import sys, saliency_callback; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_version_has_one_source():
    """`__version__` is the version: pyproject reads it (setuptools' static `attr:`), and
    the changelog has a section for it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", sc.__version__)
    pyproject = (root / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M)
    assert not re.search(r'^version = "', pyproject, re.M)  # no second, static copy
    assert 'version = { attr = "saliency_callback.__version__" }' in pyproject
    assert f"## [{sc.__version__}]" in (root / "CHANGELOG.md").read_text()
    from importlib import metadata

    assert metadata.version("saliency_callback") == sc.__version__  # what pip installed
