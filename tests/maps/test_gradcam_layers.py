"""Grad-CAM picks the feature map the classifier head pools, on real architectures.

Each model is checked against an independent Grad-CAM computed here with the backend's own
autodiff (`conftest.gradient`) on the layer the common convention names (pytorch-grad-cam's
`layer4[-1]`, `features[-1]`, `stages[-1]`: the map the head's global pooling reads).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gradient, images
from keras import ops as K

import saliency_callback as sc
from saliency_callback.maps.graph import gradcam_layer_name

SIZE = 64
A = keras.applications


def _pooled(model: keras.Model):
    """The tensor the head's global pooling (the last one: squeeze-excite blocks pool too)
    reads, found through the graph rather than by name."""
    pools = [lyr for lyr in model.layers if isinstance(lyr, keras.layers.GlobalAveragePooling2D)]
    return pools[-1].input


def _named(name: str):
    return lambda model: model.get_layer(name).output


# The last two are found through the graph: ConvNeXt's block output is an unnamed `+`
# (keras names it `add_<n>` by a global counter), MobileNetV3's an auto-named activation.
FAMILIES = {
    "ResNet50": (A.ResNet50, _named("conv5_block3_out")),
    "DenseNet121": (A.DenseNet121, _named("relu")),
    "EfficientNetB0": (A.EfficientNetB0, _named("top_activation")),
    "ConvNeXtTiny": (A.ConvNeXtTiny, _pooled),
    "MobileNetV3Small": (A.MobileNetV3Small, _pooled),
}


def reference_gradcam(features: keras.Model, rest, x: np.ndarray) -> np.ndarray:
    """Grad-CAM by hand: `features(x)` is the layer's map, `rest(map)` the logits."""
    acts = K.convert_to_numpy(features(x, training=False))
    target = K.convert_to_numpy(rest(acts)).argmax(axis=-1)[:, None]
    grads = gradient(lambda a: K.take_along_axis(rest(a), target, axis=1), acts)
    cam = np.maximum(np.einsum("bhwk,bk->bhw", acts, grads.mean(axis=(1, 2))), 0)
    return tf.image.resize(cam[..., None], x.shape[1:3], method="bilinear").numpy()[..., 0]


def assert_agrees(model: keras.Model, features: keras.Model, rest, x: np.ndarray) -> None:
    """The same map, value by value (unnormalised: a correlation of maps upsampled from the
    2x2 feature maps of 64x64 inputs would compare four numbers, up to scale). rtol 1e-2:
    float32 sums in another order differ by up to 0.3% (ConvNeXtTiny)."""
    ours = sc.Explainer(model, "gradcam", normalize=None)(x).attributions[..., 0]
    ref = reference_gradcam(features, rest, x)
    for a, b in zip(ours, ref, strict=True):
        assert b.std() > 0, "the reference map is constant: the test would prove nothing"
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-3 * np.abs(b).max())


@pytest.mark.tf_only  # the layer choice is backend-free; five applications cost ~1 min a run
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gradcam_uses_the_pooled_feature_map_of_keras_applications(family):
    build, expected = FAMILIES[family]
    keras.utils.set_random_seed(0)
    model = build(weights=None, input_shape=(SIZE, SIZE, 3), classes=4, classifier_activation=None)
    split = expected(model)
    assert gradcam_layer_name(model) == split._keras_history.operation.name
    features = keras.Model(model.inputs, split)
    rest = keras.Model(split, model.outputs)  # the head, from the map to the logits
    assert_agrees(model, features, lambda a: rest(a, training=False), images(2, (SIZE, SIZE, 3)))


# The "avg" case (the map inside the base) differs only in the graph reading, which is
# backend-free: TensorFlow runs it; both cost a MobileNetV2 compilation on JAX.
@pytest.mark.parametrize("pooling", [None, pytest.param("avg", marks=pytest.mark.tf_only)])
def test_gradcam_looks_inside_a_nested_base_model(pooling):
    """Transfer learning: a keras.applications base inside the user's model, pooled outside
    (the base's output is the map) or inside (`pooling="avg"`: the map is inside the base)."""
    keras.utils.set_random_seed(0)
    base = A.MobileNetV2(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3), pooling=pooling
    )
    inp = keras.Input((SIZE, SIZE, 3))
    x = base(inp, training=False)
    if pooling is None:
        x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inp, head(x))
    assert gradcam_layer_name(model) == "out_relu"
    features = keras.Model(base.inputs, base.get_layer("out_relu").output)

    def rest(acts):
        return K.matmul(K.mean(acts, axis=(1, 2)), head.kernel) + head.bias

    assert_agrees(model, features, rest, images(2, (SIZE, SIZE, 3)))
    # A layer inside the base can be named explicitly.
    assert gradcam_layer_name(model, "block_13_expand_relu") == "block_13_expand_relu"
    inner = sc.GradCAM("block_13_expand_relu")
    maps = sc.compute_saliency(model, images(2, (SIZE, SIZE, 3)), inner)
    assert maps.shape == (2, SIZE, SIZE) and np.isfinite(maps).all()


def test_gradcam_skips_tensors_inside_a_residual_block():
    """Conv -> (conv branch + skip) -> Add -> ReLU -> GAP: the map after the add and ReLU,
    never the branch's conv, which the skip path goes around."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    stem = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inp)
    branch = keras.layers.Conv2D(4, 3, padding="same", name="branch")(stem)
    x = keras.layers.ReLU(name="block_out")(keras.layers.Add(name="add")([stem, branch]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(2)(x))
    assert gradcam_layer_name(model) == "block_out"
    # Two heads reading two maps: neither is on every path, so the last common one is used.
    a = keras.layers.Conv2D(2, 1, name="left")(stem)
    b = keras.layers.Conv2D(2, 1, name="right")(stem)
    pooled = [keras.layers.GlobalAveragePooling2D()(t) for t in (a, b)]
    two = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Concatenate()(pooled)))
    assert gradcam_layer_name(two) == "stem"


def test_gradcam_without_a_feature_map_says_what_to_do():
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)))
    with pytest.raises(ValueError, match=r"no feature map.*GradCAM\(layer=\.\.\.\)"):
        sc.compute_saliency(model, images(1, (8, 8, 3)), "gradcam")
