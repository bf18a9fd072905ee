"""A small, fast version of the README's main job: the shortcut demo catches the shortcut."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

from tb_events import read_run, runs

DEMO = pathlib.Path(__file__).parents[1] / "examples" / "shortcut_demo.py"


def load_demo():
    spec = importlib.util.spec_from_file_location("shortcut_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    sys.modules["shortcut_demo"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_shortcut_model_is_caught_by_its_saliency(tmp_path, capsys):
    demo = load_demo()
    shortcut, clean = demo.run(
        str(tmp_path), n_train=3000, epochs=6, image_size=32, num_probes=12, verbose=True
    )
    # The shortcut model learned the background: perfect on agreeing, wrong on disagreeing.
    assert shortcut.acc_agree > 0.9 and shortcut.acc_disagree < 0.3
    # Its saliency is off the object: below chance, and clearly below the clean model's.
    assert shortcut.mass_in_mask < shortcut.chance
    assert shortcut.mass_in_mask < 0.7 * clean.mass_in_mask
    assert shortcut.alarm_epochs and not clean.alarm_epochs
    out = capsys.readouterr().out
    assert "ALARM" in out and "[shortcut] epoch  6" in out
    table = demo.verdict_table([shortcut, clean])
    assert "SHORTCUT: alarm at epoch" in table.splitlines()[2]
    assert "looks at the object" in table.splitlines()[3]
    # Each model wrote its own run into the one log dir, with every epoch logged.
    assert runs(str(tmp_path)) == {"saliency_shortcut", "saliency_clean"}
    steps = [s for s, _ in read_run(str(tmp_path / "saliency_clean")).images["saliency/probes"]]
    assert steps == [-1, 0, 1, 2, 3, 4, 5]
