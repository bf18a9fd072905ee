# %% [markdown]
# # Read the verdict back from the logs
#
# A notebook in script form (the `# %%` cells run one by one in VS Code, PyCharm or Jupyter
# with jupytext; or run it whole: `python examples/read_verdict.py logs/image_folder`).
# After a training run with `SaliencyCallback`, everything the callback decided is in the log
# dir: the signals per logged epoch, the alarm's messages and the saliency panels. This reads
# them back with the package's own reader, prints the verdict per run, and writes the report:
# a self-contained HTML page and a PNG timeline of every probe at every logged epoch.

# %%
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from saliency_callback.output import report

parser = argparse.ArgumentParser(description="Print the verdict of each saliency run in a log dir")
parser.add_argument("log_dir", nargs="?", default="logs/image_folder")
parser.add_argument("--out", default=None, help="report prefix (default: <log_dir>/report)")
args = parser.parse_args(sys.argv[1:] if __name__ == "__main__" else [])

# %% [markdown]
# ## The runs and their signals
#
# `read_saliency_runs` finds every run the callback wrote under the log dir (one per
# `SaliencyCallback`), with its scalars as `[(step, value), ...]`.

# %%
runs = report.read_saliency_runs(args.log_dir)
SIGNALS = {
    "saliency/background/harm": "harm (accuracy lost where the background disagrees)",
    "saliency/background/harm_low": "  its 95% lower bound (the default alarm: above 0.05)",
    "saliency/background/reliance": "reliance (follows the background: +1, the object: -1)",
    "saliency/background/flip_rate": "flip rate (swaps that change the prediction)",
    "saliency/mass_in_mask": "mass in mask",
    "saliency/mass_in_mask_chance": "  its chance level (the masks' area)",
    "saliency/probe_accuracy": "probe accuracy",
}
for run in runs:
    print(f"run {run.name!r}: {run.num_probes} probes, logged steps {run.steps}")
    for tag, label in SIGNALS.items():
        values = run.scalars.get(tag)
        if values:
            print(
                f"  {label:56s} last {values[-1][1]:6.2f}   all {[round(v, 2) for _, v in values]}"
            )

# %% [markdown]
# ## The verdict
#
# The alarm's decisions are logged as text (`saliency/alarm_message`) at the step it fired.
# Where it could not judge the latest step (e.g. a harm estimate resting on fewer than two
# probes), the verdict is "cannot tell", not "no alarm". A run logged without an alarm has no
# verdict, only signals.

# %%
for run in runs:
    if run.alarms:
        step, message = run.alarms[0]
        print(f"{run.name}: SHORTCUT (alarm at step {step}): {message}")
    elif run.verdict["state"] == "cannot_tell":
        print(f"{run.name}: {run.verdict['reason']}")
    elif run.has_alarm:
        print(f"{run.name}: no alarm in {len(run.steps)} logged steps")
    else:
        print(f"{run.name}: logged without an alarm; read the signals above")

# %% [markdown]
# ## The report
#
# The same panels TensorBoard shows, every logged step of every probe (TensorBoard keeps 10 by
# default), with the curves and the alarm events. In a notebook,
# `saliency_callback.plot_saliency(model, images)` draws the maps of a model you hold instead.

# %%
prefix = args.out or os.path.join(args.log_dir, "report")
report.write_report(runs, [prefix + ".html", prefix + ".png"], log_dir=args.log_dir, max_steps=8)
print(f"Wrote {prefix}.html and {prefix}.png")
