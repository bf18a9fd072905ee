"""A small, fast version of the README's main job: the shortcut demo catches the shortcut."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
from tb_events import event_files, read_run, runs

DEMO = pathlib.Path(__file__).parents[1] / "examples" / "shortcut_demo.py"


def load_demo():
    spec = importlib.util.spec_from_file_location("shortcut_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    sys.modules["shortcut_demo"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_shortcut_model_is_caught_by_its_saliency(tmp_path, capsys):
    demo = load_demo()
    shortcut, clean, fixed = demo.run(
        str(tmp_path), n_train=3000, epochs=6, image_size=32, num_probes=12, fix=True
    )
    # The shortcut model learned the background: perfect on agreeing, wrong on disagreeing.
    assert shortcut.acc_agree > 0.9 and shortcut.acc_disagree < 0.3
    # The recommended alarm (the estimated harm's lower bound) fires for the shortcut model
    # only: its predictions follow the swapped-in background; the clean model's the object.
    assert shortcut.alarm_epochs and not clean.alarm_epochs
    assert shortcut.reliance > 0.5 > clean.reliance
    # The estimate agrees with the measured harm (acc agree - acc disagree): high for the
    # shortcut model, its lower bound above the margin; about zero for the clean one.
    # The probes are drawn as the training data is (95% agree), so the label-sorted estimate
    # is diluted by at most (1 - 0.95) * (1 + 1/2) of the harm; the rest is the model's own
    # spread over probes.
    measured = shortcut.acc_agree - shortcut.acc_disagree
    assert np.isfinite(shortcut.harm) and abs(shortcut.harm - measured) < 0.35
    assert 0.05 < shortcut.harm_low < shortcut.harm < shortcut.harm_high
    assert np.isfinite(clean.harm) and abs(clean.harm) < 0.2 and clean.harm_low < 0.05
    # Swaps change the shortcut model's predictions more: almost every probe's partner from
    # another class carries that class's cue.
    assert shortcut.flip_rate > 0.5 and shortcut.flip_rate > clean.flip_rate
    assert shortcut.gap > 0.5 and shortcut.gap > clean.gap + 0.4
    # The fix (background swaps at p=0.8 on the shortcut model's data, the same 95% agreement):
    # on the balanced test split the measured harm falls from about 1 to below 0.25 (0.15 in
    # a run of these settings), and the alarm's signal is below its limit at the end.
    assert fixed.agreement == shortcut.agreement
    assert fixed.acc_agree - fixed.acc_disagree < 0.25
    assert fixed.acc_disagree > shortcut.acc_disagree + 0.5
    assert shortcut.alarm_at_end and not fixed.alarm_at_end
    assert fixed.harm_low < 0.05 and fixed.reliance < 0.5
    out = capsys.readouterr().out
    assert "ALARM" in out and "[shortcut] epoch  6" in out and "[fixed   ] epoch  6" in out
    assert "80% of them swapped each epoch" in out
    table = demo.verdict_table([shortcut, clean, fixed])
    assert "SHORTCUT: alarm at epoch" in table.splitlines()[2]
    assert "no alarm" in table.splitlines()[3]
    assert table.splitlines()[4].startswith("fixed") and "SHORTCUT" not in table.splitlines()[4]
    # Each model wrote its own run into the one log dir, with every epoch logged.
    assert runs(str(tmp_path)) == {"saliency_shortcut", "saliency_clean", "saliency_fixed"}
    steps = [s for s, _ in read_run(str(tmp_path / "saliency_clean")).images["saliency/probes"]]
    assert steps == [-1, 0, 1, 2, 3, 4, 5]


def test_running_the_demo_twice_leaves_one_event_file_per_run(tmp_path, capsys):
    from saliency_callback.output.writer import RunWriter

    demo = load_demo()
    demo_runs = {"saliency_shortcut", "saliency_clean"}
    # Someone else's run in the same log dir, and a non-event file in a demo run: kept.
    other = RunWriter(str(tmp_path), "other")
    other.scalars({"x": 1.0}, 0)
    other.close()
    (tmp_path / "saliency_clean").mkdir()
    (tmp_path / "saliency_clean" / "notes.txt").write_text("mine")
    for attempt in range(2):
        removed = demo.clear_previous_runs(str(tmp_path))
        assert len(removed) == (0 if attempt == 0 else 2)
        for name in demo_runs:  # what one demo run writes: one event file per run
            writer = RunWriter(str(tmp_path), name)
            writer.scalars({"saliency/mass_in_mask": 0.5}, attempt)
            writer.close()
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Cleared 2 event file(s) of an earlier demo run from {tmp_path}"]
    assert runs(str(tmp_path)) == demo_runs | {"other"}
    for name in demo_runs:
        assert len(event_files(str(tmp_path / name))) == 1, name
        # The surviving file is the second run's: it holds step 1 only.
        assert [s for s, _ in read_run(str(tmp_path / name)).scalars["saliency/mass_in_mask"]] == [
            1
        ]
    assert len(event_files(str(tmp_path / "other"))) == 1
    assert (tmp_path / "saliency_clean" / "notes.txt").read_text() == "mine"
