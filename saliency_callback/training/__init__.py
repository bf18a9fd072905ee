"""The callback and what runs beside training.

- `callback`: `SaliencyCallback`, which only wires the other rooms into Keras's hooks;
- `options`: `Display` and `Runtime`, the composable settings;
- `worker`: the thread that renders and writes off the training thread;
- `epoch_start`: watching for late epoch starts;
- `resume`: reading a run's history back when training resumes.
"""
