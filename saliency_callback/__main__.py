"""`python -m saliency_callback`: the `saliency-callback` command line."""

from saliency_callback.commands.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
