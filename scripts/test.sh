#!/usr/bin/env bash
# The project's test command: lint, format check, type check, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3 KERAS_BACKEND=tensorflow
ruff check .
ruff format --check .
mypy
python -m pytest -q -p no:cacheprovider "$@"
