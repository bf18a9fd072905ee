"""The background tests and the alarm: does the model decide from the background?

- `background`: the interventions (only_fg, only_bg, the swaps) and their scores;
- `calibration`: the harm estimate, its null hypothesis and its bounds;
- `alarm`: `ShortcutAlarm`, the rule that turns logged signals into a verdict;
- `unmeasured`: "cannot tell", when a signal rests on too few probes;
- `proposals`: object masks for probes that come without any.

Nothing here imports the callback.
"""
