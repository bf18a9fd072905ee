"""Prints the README's troubleshooting table: every bad input the tests check, with the real
message it raises.

Run: python scripts/troubleshooting_table.py > /tmp/table.md
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tests"))

import numpy as np
import test_callback as tc
import test_engine as te

import saliency_callback as sc


def message(fn) -> tuple[str, str]:
    try:
        fn()
    except (TypeError, ValueError) as err:
        return type(err).__name__, str(err).replace("|", "\\|").replace("\n", " ")
    return "-", "(accepted)"


def engine_case(kwargs: dict) -> tuple[str, str]:
    kwargs = dict(kwargs)
    model = kwargs.pop("model", None)
    model = te._model() if model is None else (model() if callable(model) else model)
    x = kwargs.pop("images", te.GOOD)
    return message(lambda: sc.compute_saliency(model, x, **kwargs))


def callback_case(kwargs: dict, tmp: str) -> tuple[str, str]:
    kwargs = dict(kwargs)
    if kwargs.get("log_dir") == "FILE":
        path = os.path.join(tmp, "file")
        pathlib.Path(path).write_text("x")
        kwargs["log_dir"] = path
    x = kwargs.pop("images", tc.images(tc.N, tc.SHAPE))
    return message(lambda: sc.SaliencyCallback(x, log_dir=kwargs.pop("log_dir", tmp), **kwargs))


def model_case(kwargs: dict, tmp: str) -> tuple[str, str]:
    kwargs = dict(kwargs)
    x = kwargs.pop("images", tc.images(tc.N, tc.SHAPE))
    cb = sc.SaliencyCallback(x, log_dir=tmp, **kwargs)
    model = tc.compiled_cnn()
    xs, ys = tc.train_data()
    return message(lambda: model.fit(xs, ys, epochs=1, verbose=0, callbacks=[cb]))


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kwargs, *_ in te.BAD_ENGINE_INPUTS:
            rows.append(("`compute_saliency`", name, *engine_case(kwargs)))
        for name, kwargs, *_ in tc.BAD_CALLBACK_INPUTS:
            rows.append(("`SaliencyCallback(...)`", name, *callback_case(kwargs, tmp)))
        for name, kwargs, *_ in tc.BAD_FOR_MODEL:
            rows.append(("`fit` (on_train_begin)", name, *model_case(kwargs, tmp)))
    print("| where | bad input | error | message |")
    print("|---|---|---|---|")
    for where, name, kind, text in rows:
        print(f"| {where} | {name} | `{kind}` | {text} |")
    print(f"\n{len(rows)} cases.", file=sys.stderr)
    np.testing.assert_equal(all(kind != "-" for _, _, kind, _ in rows), True)


if __name__ == "__main__":
    main()
