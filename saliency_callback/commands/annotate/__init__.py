"""`saliency-callback annotate`: a local page to draw and check the probes' boxes and masks.

- `loading`: the probes to start from (image files or a probe file, labels, proposals);
- `session`: the probes being edited, autosaved at every change, saved atomically;
- `server`: the standard library HTTP server on 127.0.0.1 serving the page and its API;
- `command`: the subcommand's options and loop;
- `static/`: the page itself (HTML, CSS and ES modules, shipped as package data).

The file it writes is described in `saliency_callback.data.probe_file`.
"""
