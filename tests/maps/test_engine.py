"""The engine: targets, model kinds, non-mutation, compilation, and every bad input."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import images, linear_model, tiny_cnn

import saliency_callback as sc


def kernel_column(model, c, shape):
    return model.get_layer("head").kernel.numpy()[:, c].reshape(shape)


def test_maps_are_float32_in_unit_range_and_cover_every_input_form():
    model = tiny_cnn()
    x = images(4)
    maps = sc.compute_saliency(model, x)
    assert maps.shape == (4, 12, 12) and maps.dtype == np.float32
    assert maps.min() == 0.0 and maps.max() == 1.0
    assert np.allclose(maps.reshape(4, -1).max(axis=1), 1.0)
    np.testing.assert_allclose(sc.compute_saliency(model, tf.constant(x)), maps, rtol=1e-6)
    as_uint8 = (x * 255).astype(np.uint8)
    ref = sc.compute_saliency(model, as_uint8.astype(np.float32))
    np.testing.assert_allclose(sc.compute_saliency(model, as_uint8), ref, rtol=1e-6)


def test_grayscale_rank3_images_get_a_channel_axis():
    model = linear_model(shape=(6, 5, 1))
    x = images(3, (6, 5))
    attr = sc.compute_saliency(model, x, target=1, reduction=None)
    assert attr.shape == (3, 6, 5, 1)
    np.testing.assert_allclose(attr[0], kernel_column(model, 1, (6, 5, 1)), rtol=1e-5)


def test_targets_predicted_label_int_sequence_and_callable():
    model = linear_model(activation="softmax")
    x = images(4, (6, 5, 3))
    shape = (6, 5, 3)
    pred = model.predict(x, verbose=0).argmax(axis=1)
    result = sc.Explainer(model)(x)
    np.testing.assert_array_equal(result.targets, pred)
    for i, c in enumerate(pred):
        np.testing.assert_allclose(result.attributions[i], kernel_column(model, c, shape), 1e-5)
    labels = np.array([3, 2, 1, 0])
    by_label = sc.Explainer(model, target="label")(x, labels=labels)
    np.testing.assert_array_equal(by_label.targets, labels)
    one_hot = keras.utils.to_categorical(labels, 4)
    np.testing.assert_array_equal(
        sc.Explainer(model, target="label")(x, labels=one_hot).attributions,
        by_label.attributions,
    )
    per_image = sc.Explainer(model, target=[3, 2, 1, 0])(x)
    np.testing.assert_array_equal(per_image.attributions, by_label.attributions)
    fixed = sc.Explainer(model, target=2)(x)
    assert (fixed.targets == 2).all()
    # A callable: the difference of two logits has the difference of two columns as gradient.
    diff = sc.Explainer(model, target=lambda z: z[:, 1] - z[:, 0])(x)
    np.testing.assert_allclose(
        diff.attributions[0],
        kernel_column(model, 1, shape) - kernel_column(model, 0, shape),
        rtol=1e-4,
        atol=1e-6,
    )


def test_outputs_confidence_and_scores_report_the_model():
    model = tiny_cnn()
    x = images(5)
    result = sc.Explainer(model, "smoothgrad")(x)
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(result.outputs, probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.targets, probs.argmax(axis=1))
    np.testing.assert_allclose(result.confidence, probs.max(axis=1), rtol=1e-5)


def test_binary_sigmoid_model_explains_both_classes():
    model = linear_model(classes=1, activation="sigmoid")
    x = images(4, (6, 5, 3))
    w = kernel_column(model, 0, (6, 5, 3))
    p = model.predict(x, verbose=0)[:, 0]
    result = sc.Explainer(model)(x)
    np.testing.assert_array_equal(result.targets, (p > 0.5).astype(int))
    for i, t in enumerate(result.targets):
        np.testing.assert_allclose(result.attributions[i], w if t == 1 else -w, rtol=1e-5)
    np.testing.assert_allclose(result.confidence, np.where(p > 0.5, p, 1 - p), rtol=1e-5)
    neg = sc.Explainer(model, target=0)(x)
    np.testing.assert_allclose(neg.attributions[0], -w, rtol=1e-5)
    with pytest.raises(ValueError, match=r"expected `target` in \[0, 2\)"):
        sc.Explainer(model, target=2)


def test_regression_model():
    """A CNN that regresses a value (say a fish's age from a scale image)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(1, name="age")(x))
    x = images(3, (12, 12, 1))
    result = sc.Explainer(model)(x)
    np.testing.assert_allclose(result.outputs[:, 0], model.predict(x, verbose=0)[:, 0], 1e-5)
    assert (result.targets == 0).all() and result.maps.shape == (3, 12, 12)
    assert np.abs(result.attributions).max() > 0
    with pytest.raises(ValueError, match="regression"):
        sc.Explainer(model, target="label")(x, labels=[0, 0, 0])


def test_multi_output_model_chooses_output_by_name_or_index():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 5, 3))
    flat = keras.layers.Flatten()(inp)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(flat)
    reg = keras.layers.Dense(1, name="size")(flat)
    model = keras.Model(inp, [cls, reg])
    x = images(2, (6, 5, 3))
    with pytest.raises(ValueError, match=r"has 2 outputs \['cls', 'size'\]"):
        sc.Explainer(model)
    by_name = sc.compute_saliency(model, x, output="size", reduction=None)
    by_index = sc.compute_saliency(model, x, output=1, reduction=None)
    w = model.get_layer("size").kernel.numpy()[:, 0].reshape(6, 5, 3)
    np.testing.assert_allclose(by_name[0], w, rtol=1e-5)
    np.testing.assert_array_equal(by_name, by_index)
    cls_attr = sc.compute_saliency(model, x, output="cls", target=1, reduction=None)
    np.testing.assert_allclose(
        cls_attr[0], model.get_layer("cls").kernel.numpy()[:, 1].reshape(6, 5, 3), rtol=1e-5
    )
    with pytest.raises(ValueError, match="Unknown `output`: received output='nope'"):
        sc.Explainer(model, output="nope")
    with pytest.raises(ValueError, match="received output=5"):
        sc.Explainer(model, output=5)


def test_sequential_model_built_without_input():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.layers.Conv2D(3, 3), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")]
    )
    model.build((None, 8, 8, 1))
    maps = sc.compute_saliency(model, images(3, (8, 8, 1)), "gradcam")
    assert maps.shape == (3, 8, 8)


def test_model_is_never_mutated():
    model = tiny_cnn()
    x = images(4)
    config = json.dumps(model.get_config(), sort_keys=True, default=str)
    weights = [w.copy() for w in model.get_weights()]
    before = model.predict(x, verbose=0)
    n_layers = len(model.layers)
    for method in ("vanilla", "smoothgrad", "integrated_gradients", "gradcam"):
        sc.compute_saliency(model, x, method)
    assert json.dumps(model.get_config(), sort_keys=True, default=str) == config
    assert len(model.layers) == n_layers
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    assert model.get_layer("head").activation is keras.activations.softmax


def test_explainer_follows_weight_changes_without_retracing():
    model = linear_model(activation="softmax")
    x = images(4, (6, 5, 3))
    explainer = sc.Explainer(model, target=0)
    first = explainer(x).attributions
    traces = explainer.tracing_count
    head = model.get_layer("head")
    head.kernel.assign(head.kernel.numpy() * 2.0)
    second = explainer(x).attributions
    np.testing.assert_allclose(second, 2.0 * first, rtol=1e-5)
    explainer(x[:3])  # a different number of probes does not retrace either
    assert explainer.tracing_count == traces


def test_compute_saliency_reuses_its_compiled_function():
    model = tiny_cnn()
    x = images(4)
    sc.compute_saliency(model, x, "smoothgrad")
    from saliency_callback.maps.engine import _EXPLAINERS

    (explainer,) = [e for e in _EXPLAINERS[model].values() if isinstance(e.method, sc.SmoothGrad)]
    traces = explainer.tracing_count
    sc.compute_saliency(model, x + 0.1, "smoothgrad")
    assert explainer.tracing_count == traces


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's sweep")
@pytest.mark.parametrize("method", [sc.SmoothGrad(n_samples=5), sc.IntegratedGradients(steps=6)])
def test_the_sweep_traces_the_model_once_and_sums_like_the_chunk_loop(method):
    """The one-call sweep against the engine's chunk loop (the same point function, summed in
    NumPy), with images split across chunks; and its graph holds the model once (a sweep
    tracing the model twice costs twice the setup: #20)."""
    model = tiny_cnn()
    x = images(5)
    explainer = sc.Explainer(model, method, batch_size=4)  # 4 points a chunk: images split
    xs, targets = explainer.prepare(x)
    swept = explainer.explain_prepared(xs, targets)
    looped = sc.Explainer(model, method, batch_size=4)
    looped._sweep = lambda shape: None  # type: ignore[method-assign]
    reference = looped.explain_prepared(xs, targets)
    np.testing.assert_allclose(swept.attributions, reference.attributions, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(swept.targets, reference.targets)

    sweep = explainer._sweep(tuple(xs.shape[1:]))
    graph = sweep.get_concrete_function().graph.as_graph_def()
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    forward = sum(n.op == "Conv2D" for n in nodes)  # tiny_cnn has two (a gradient: others)
    assert forward == 2, f"the model's convolutions appear {forward} times, not 2"


def test_percentile_normalisation_and_signed_reduction():
    model = linear_model(activation=None)
    x = images(2, (6, 5, 3))
    clipped = sc.compute_saliency(model, x, normalize="percentile", percentile=50)
    assert clipped.max() == 1.0 and (clipped == 1.0).mean() >= 0.45
    signed = sc.compute_saliency(model, x, target=0, reduction="signed")
    w = kernel_column(model, 0, (6, 5, 3)).sum(-1)
    np.testing.assert_allclose(signed[0], w / np.abs(w).max(), rtol=1e-5)
    assert signed.min() < 0


# --- bad input: each is rejected before any gradient is computed --------------------------

_MODEL = None


def _model():
    global _MODEL
    if _MODEL is None:
        _MODEL = tiny_cnn()
    return _MODEL


def _int_input_model():
    inp = keras.Input((4, 4, 1), dtype="int32")
    out = keras.layers.Dense(2)(keras.layers.Flatten()(keras.ops.cast(inp, "float32")))
    return keras.Model(inp, out)


def _vector_model():
    inp = keras.Input((8,))
    return keras.Model(inp, keras.layers.Dense(2)(inp))


GOOD = images(4)
BAD_ENGINE_INPUTS = [
    ("unknown method", dict(method="saliency"), ValueError, "Unknown `method`: received"),
    ("method type", dict(method=3), TypeError, "expected `method`"),
    ("rank 2 images", dict(images=np.zeros((4, 12))), ValueError, r"received shape \(4, 12\)"),
    ("rank 5 images", dict(images=np.zeros((1, 4, 12, 12, 3))), ValueError, "`images` of shape"),
    ("channels", dict(images=np.zeros((4, 12, 12, 1))), ValueError, r"channels 1 != 3"),
    ("size", dict(images=np.zeros((4, 16, 16, 3))), ValueError, r"height 16 != 12"),
    ("empty batch", dict(images=np.zeros((0, 12, 12, 3))), ValueError, "non-empty `images`"),
    ("nan", dict(images=np.where(GOOD > 0.5, np.nan, GOOD)), ValueError, "NaN or inf"),
    ("inf", dict(images=np.full((2, 12, 12, 3), np.inf)), ValueError, "NaN or inf"),
    ("strings", dict(images=np.array([["a"]])), TypeError, "numeric array"),
    ("bool", dict(images=np.zeros((2, 12, 12, 3), bool)), TypeError, "dtype bool"),
    ("labels length", dict(target="label", labels=[0, 1]), ValueError, "length 4"),
    ("labels range", dict(target="label", labels=[0, 1, 2, 7]), ValueError, r"\[0, 3\)"),
    ("labels float", dict(target="label", labels=[0, 1.5, 2, 0]), ValueError, "integer class"),
    ("one-hot width", dict(target="label", labels=np.eye(5)[:4]), ValueError, r"\(4, 3\)"),
    ("label w/o labels", dict(target="label"), ValueError, "needs `labels=`"),
    ("target range", dict(target=3), ValueError, r"expected `target` in \[0, 3\)"),
    ("negative target", dict(target=-1), ValueError, "received target=-1"),
    ("target string", dict(target="top"), ValueError, "Unknown `target`: received 'top'"),
    ("target type", dict(target=1.5), TypeError, "expected `target`"),
    ("target seq length", dict(target=[0, 1]), ValueError, "`target` of length 4"),
    ("target seq range", dict(target=[0, 1, 2, 9]), ValueError, r"\[0, 3\)"),
    ("callable shape", dict(target=lambda z: z), ValueError, r"received shape \(2, 3\)"),
    # Too many indices fails on every backend (JAX clamps an out-of-range index instead).
    ("callable error", dict(target=lambda z: z[:, 0, 1]), ValueError, "callable `target` failed"),
    ("gradcam layer", dict(method=sc.GradCAM("nope")), ValueError, "Unknown Grad-CAM `layer`"),
    ("gradcam 2-D", dict(method=sc.GradCAM("gap")), ValueError, "4-D output"),
    ("batch size", dict(batch_size=0), ValueError, "batch_size=0"),
    ("reduction", dict(reduction="mean"), ValueError, "Unknown `reduction`: received 'mean'"),
    ("normalize", dict(normalize="zscore"), ValueError, "Unknown `normalize`"),
    ("percentile", dict(normalize="percentile", percentile=0), ValueError, "percentile=0"),
    ("not a model", dict(model="model.keras"), TypeError, "expected `model` to be a keras.Model"),
    (
        "int input",
        dict(model=_int_input_model, images=np.zeros((2, 4, 4, 1))),
        ValueError,
        "integer inputs",
    ),
    (
        "non-image model",
        dict(model=_vector_model, images=np.zeros((2, 8))),
        ValueError,
        r"input shape \(batch, H, W, C\)",
    ),
]


@pytest.mark.parametrize(
    "kwargs,error,match", [c[1:] for c in BAD_ENGINE_INPUTS], ids=[c[0] for c in BAD_ENGINE_INPUTS]
)
def test_bad_input_is_rejected_with_a_clear_message(kwargs, error, match):
    kwargs = dict(kwargs)
    model = kwargs.pop("model", None)
    model = _model() if model is None else (model() if callable(model) else model)
    x = kwargs.pop("images", GOOD)
    with pytest.raises(error, match=match):
        sc.compute_saliency(model, x, **kwargs)


def test_regression_confidence_is_the_predicted_value_and_labels_may_be_values():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 5, 3))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(inp)))
    x = images(3, (6, 5, 3))
    result = sc.Explainer(model)(x, labels=[4.2, 1.5, 3.0])
    np.testing.assert_allclose(result.confidence, model.predict(x, verbose=0)[:, 0], rtol=1e-5)


def test_the_compute_saliency_cache_does_not_keep_models_alive():
    import gc
    import weakref

    model = tiny_cnn()
    sc.compute_saliency(model, images(2))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
