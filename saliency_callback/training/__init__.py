"""The callback and what runs beside training.

- `callback`: `SaliencyCallback`, which only wires the other rooms into Keras's hooks;
- `checks`: checking its arguments; `signals`, `background_wiring`: what a logged epoch
  measures; `alarm_step`: the alarm's bookkeeping; `captions`: the words on its pictures;
- `options`: `Display` and `Runtime`, the composable settings;
- `worker`: the thread that renders and writes off the training thread;
- `epoch_start`: watching for late epoch starts;
- `resume`: reading a run's history back when training resumes.
"""
