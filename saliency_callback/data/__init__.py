"""The probes and the images they come from.

- `probes`: the fixed probe set (images, labels, object regions);
- `probe_file`: the probe file that the annotate page writes;
- `loading`: image files from disk;
- `datasets`, `textures`: synthetic shortcut beds for demos, tests and benchmarks.
"""
