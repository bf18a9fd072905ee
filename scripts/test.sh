#!/usr/bin/env bash
# The project's test command: lint, format check, type check, the docs build, then the test suite on
# TensorFlow, and the backend-relevant modules (gradients, engine, callback, non-interference)
# again on every other backend in SALIENCY_BACKENDS (default "tensorflow jax"; add torch with
# SALIENCY_BACKENDS="tensorflow jax torch" once a CPU build of torch is installed).
# Arguments go to pytest on every backend (tf_only tests are deselected off TensorFlow); when
# none names a test path, the other backends run BACKEND_TESTS.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
BACKENDS="${SALIENCY_BACKENDS:-tensorflow jax}"
BACKEND_TESTS=(
    tests/test_backends.py tests/test_engine.py tests/test_methods.py tests/test_gradcam_layers.py
    tests/test_callback.py tests/test_faults.py tests/test_noninterference.py
    tests/test_jax_distribution.py tests/test_alarm_modes.py tests/test_bench_markdown.py
    tests/test_epoch_start.py
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
        KERAS_BACKEND=tensorflow python -m pytest -q -p no:cacheprovider "$@"
    else
        args=("$@") value=0 paths=0
        for arg in "$@"; do  # an argument that is neither an option nor its value is a path
            if [ $value = 1 ]; then value=0; elif [[ $arg == -[kmp] ]]; then value=1;
            elif [[ $arg != -* ]]; then paths=1; fi
        done
        [ $paths = 1 ] || args+=("${BACKEND_TESTS[@]}")
        KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider -m "not tf_only" "${args[@]}"
    fi
done
