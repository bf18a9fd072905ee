"""`python -m saliency_callback`: the `saliency-callback` command line."""

from saliency_callback.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
