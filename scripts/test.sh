#!/usr/bin/env bash
# The project's test command: lint, format check, type check, the docs build, then the test suite on
# TensorFlow, and the backend-relevant modules (gradients, engine, callback, non-interference)
# again on every other backend in SALIENCY_BACKENDS (default "tensorflow jax"; add torch with
# SALIENCY_BACKENDS="tensorflow jax torch" once a CPU build of torch is installed).
# Arguments go to pytest on every backend (tf_only tests are deselected off TensorFlow); when
# none names a test path, the other backends run BACKEND_TESTS.
# The tests run on PYTEST_WORKERS worker processes (pytest-xdist, default 2; 0 runs them in this
# process), each test file on one worker, so a module's fixtures are built once.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
BACKENDS="${SALIENCY_BACKENDS:-tensorflow jax}"
WORKERS=(-n "${PYTEST_WORKERS:-2}" --dist loadfile)
BACKEND_TESTS=(
    tests/maps/test_backends.py tests/maps/test_engine.py tests/maps/test_methods.py
    tests/maps/test_gradcam_layers.py tests/training/test_callback.py tests/training/test_faults.py
    tests/training/test_noninterference.py tests/training/test_jax_distribution.py
    tests/training/test_epoch_start.py tests/shortcuts/test_alarm_modes.py
    tests/benchmarks/test_bench_markdown.py
)
ruff check .
ruff format --check .
mypy
# The docs site: a broken link, a missing page or an API reference that does not resolve fails.
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir "$site"  # not --quiet: it hides the warnings
for backend in $BACKENDS; do
    echo "== KERAS_BACKEND=$backend"
    if [ "$backend" = tensorflow ]; then
        KERAS_BACKEND=tensorflow python -m pytest -q -p no:cacheprovider "${WORKERS[@]}" "$@"
    else
        args=("$@") value=0 paths=0
        for arg in "$@"; do  # an argument that is neither an option nor its value is a path
            if [ $value = 1 ]; then value=0; elif [[ $arg == -[kmpn] ]]; then value=1;
            elif [[ $arg != -* ]]; then paths=1; fi
        done
        [ $paths = 1 ] || args+=("${BACKEND_TESTS[@]}")
        KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider "${WORKERS[@]}" -m "not tf_only" \
            "${args[@]}"
    fi
done
