#!/usr/bin/env bash
# The versions matrix (#30): fresh venvs from the package registries, the package installed
# into each as a user would, then the demo, a fast subset of the tests, `pip check`, and
# whether TensorFlow is left alone (or absent). Usage:
#   bash scripts/versions_matrix.sh [oldest] [newest] [jax] [torch]   (default: all four)
# Venvs go under $MATRIX_DIR (default /tmp/saliency_matrix); logs in $MATRIX_DIR/<name>.log.
# The venvs:
#   oldest  tensorflow-cpu 2.16.2 (the CPU build), tensorboard 2.16.2, keras 3.3.3, numpy<2;
#           then `pip install .` must leave that TensorFlow alone
#   newest  tensorflow (newest), then `pip install .`, then the same check
#   jax     `pip install ".[jax]"`: no TensorFlow at all
#   torch   torch 2.13.0 (a CPU build), then `pip install ".[torch]"`: no TensorFlow at all
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MATRIX_DIR=${MATRIX_DIR:-/tmp/saliency_matrix}
mkdir -p "$MATRIX_DIR"
PY=${PYTHON:-python3}
# Fast tests: the writer against TensorFlow's, a fit with TensorFlow blocked, the unmeasured signals.
FAST_TESTS=(tests/output/test_event_file.py tests/training/test_without_tensorflow.py
            tests/shortcuts/test_unmeasured.py)

tf_line() { "$1/bin/pip" list 2>/dev/null | grep -iE '^(tensorflow|tensorflow-cpu|tf-nightly|keras|numpy|tensorboard) ' | tr -s ' ' | tr '\n' ';'; }

run_one() {
    local name=$1 venv="$MATRIX_DIR/$1" backend=tensorflow extra="" status=0
    rm -rf "$venv"
    "$PY" -m venv "$venv" || return 1
    local pip="$venv/bin/pip" py="$venv/bin/python"
    "$pip" install -q --upgrade pip
    case $name in
        oldest) "$pip" install -q "tensorflow-cpu==2.16.2" "tensorboard==2.16.2" "keras==3.3.3" "numpy<2" ;;
        newest) "$pip" install -q tensorflow ;;
        jax) backend=jax; extra="[jax]" ;;
        torch) backend=torch; extra="[torch]"; "$pip" install -q "torch==2.13.0" ;;
    esac
    local before after
    before=$(tf_line "$venv")
    "$pip" install -q "$ROOT$extra" pytest pytest-timeout || { echo "FAIL $name: install"; return 1; }
    after=$(tf_line "$venv")
    echo "$name before: $before"
    echo "$name after:  $after"
    if [[ $name == oldest || $name == newest ]]; then
        local tf_before tf_after
        tf_before=$(echo "$before" | tr ';' '\n' | grep -iE '^(tensorflow|tensorflow-cpu) ')
        tf_after=$(echo "$after" | tr ';' '\n' | grep -iE '^(tensorflow|tensorflow-cpu|tf-nightly) ')
        [[ "$tf_before" == "$tf_after" ]] || { echo "FAIL $name: TensorFlow changed"; status=1; }
    else
        if "$py" -c "import tensorflow" 2>/dev/null; then
            echo "FAIL $name: tensorflow imports"; status=1
        else
            echo "ok $name: import tensorflow fails"
        fi
    fi
    "$pip" check && echo "ok $name: pip check" || { echo "FAIL $name: pip check"; status=1; }
    # The demo, from a scratch folder (the installed package, not the checkout).
    local work="$MATRIX_DIR/$name-work"
    rm -rf "$work" && mkdir -p "$work"
    if (cd "$work" && KERAS_BACKEND=$backend TF_CPP_MIN_LOG_LEVEL=3 \
            "$py" "$ROOT/examples/shortcut_demo.py" --epochs 2 --n-train 600 --logdir "$work/logs"); then
        echo "ok $name: demo"
    else
        echo "FAIL $name: demo"; status=1
    fi
    if (cd "$ROOT" && KERAS_BACKEND=$backend TF_CPP_MIN_LOG_LEVEL=3 \
            "$py" -m pytest -q -p no:cacheprovider -o addopts="" "${FAST_TESTS[@]}"); then
        echo "ok $name: tests"
    else
        echo "FAIL $name: tests"; status=1
    fi
    return $status
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(oldest newest jax torch)
overall=0
for name in "${names[@]}"; do
    echo "== $name"
    if run_one "$name" >"$MATRIX_DIR/$name.log" 2>&1; then result=ok; else result=FAIL; overall=1; fi
    grep -E '^(ok|FAIL|[a-z]+ (before|after):)' "$MATRIX_DIR/$name.log"
    echo "== $name: $result (log: $MATRIX_DIR/$name.log)"
done
exit $overall
