"""The command line: `saliency-callback explain | report | annotate`.

- `cli`: the entry point and its subcommands;
- `explain_files`: maps for image files, without training;
- `annotate/`: the local page where probes' objects are boxed;
- `_common`: errors and parsing shared by the subcommands.
"""
