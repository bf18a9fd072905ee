"""Backend selection, and what each backend must get right: live weights, no retrace, the
Grad-CAM layer off every path, and parameters left alone."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import BACKEND, gradient, images, tiny_cnn
from keras import ops as K

import saliency_callback as sc
from saliency_callback.maps import backends


def test_the_active_backend_has_a_module_and_others_are_refused():
    assert backends.backend().__name__ == f"saliency_callback.maps.backends.{BACKEND}"
    for name in ("numpy", "openvino"):
        with pytest.raises(ValueError, match=f"the Keras backend is '{name}'"):
            backends.backend(name)


def test_maps_follow_training_and_match_a_fresh_explainer(tmp_path):
    """A compiled function must read the weights at each call, not the ones it was traced
    with (a jitted closure over the model would keep the first epoch's weights)."""
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    x = images(4)
    explainer = sc.Explainer(model, "integrated_gradients", target=0, batch_size=8)
    before = explainer(x).attributions
    traces = explainer.tracing_count
    y = np.array([1, 2, 0, 1])
    model.fit(images(16, seed=1), np.tile(y, 4), epochs=2, batch_size=4, verbose=0)
    after = explainer(x).attributions
    assert np.abs(after - before).max() > 1e-3 * np.abs(before).max()
    fresh = sc.Explainer(model, "integrated_gradients", target=0, batch_size=8)(x)
    np.testing.assert_allclose(after, fresh.attributions, rtol=1e-5, atol=1e-7)
    assert explainer.tracing_count == traces


def residual_model() -> keras.Model:
    keras.utils.set_random_seed(2)
    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="tanh", name="c1")(inp)
    b = keras.layers.Conv2D(4, 3, padding="same", activation="tanh", name="c2")(a)
    c = keras.layers.Add(name="add")([a, b])
    gap = keras.layers.GlobalAveragePooling2D(name="gap")(c)
    out = keras.layers.Dense(3, activation="softmax", name="head")(gap)
    return keras.Model(inp, out)


def test_gradcam_on_a_layer_that_a_skip_connection_goes_around():
    """`c2` is not on every path to the output: its gradient is the one through `add`."""
    model = residual_model()
    x = images(3, (8, 8, 3))
    result = sc.Explainer(model, sc.GradCAM(layer="c2"), target=1, normalize=None)(x)
    view = keras.Model(model.inputs, [model.get_layer("c1").output, model.get_layer("c2").output])
    a, b = (K.convert_to_numpy(t) for t in view(x))
    head = model.get_layer("head")

    def logit(acts):
        return (K.matmul(K.mean(K.add(a, acts), axis=(1, 2)), head.kernel) + head.bias)[:, 1]

    grads = gradient(logit, b)
    cam = np.maximum(np.einsum("bhwk,bk->bhw", b, grads.mean(axis=(1, 2))), 0)
    assert cam.std() > 0
    np.testing.assert_allclose(result.attributions[..., 0], cam, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch parameters' .grad")
def test_torch_parameters_gradients_are_never_written():
    model = tiny_cnn()
    for method in ("vanilla", "gradcam"):
        sc.Explainer(model, method)(images(2))
    assert all(v.value.grad is None for v in model.trainable_variables)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.flat = keras.layers.Flatten()
        self.head = keras.layers.Dense(3)

    def call(self, x):
        return self.head(self.flat(x))


def test_subclassed_model_gradients_follow_its_weights():
    """A subclassed model is called as a whole: its variables must still be read live."""
    keras.utils.set_random_seed(0)
    model = Subclassed()
    x = images(2, (4, 4, 1))
    model(x)
    with pytest.warns(UserWarning, match="subclassed"):
        explainer = sc.Explainer(model, target=lambda z: z[:, 2], normalize=None)
    kernel = K.convert_to_numpy(model.head.kernel)
    first = explainer(x).attributions
    np.testing.assert_allclose(first[1], kernel[:, 2].reshape(4, 4, 1), rtol=1e-5)
    model.head.kernel.assign(kernel * 3.0)
    np.testing.assert_allclose(explainer(x).attributions, 3.0 * first, rtol=1e-5)


def test_backend_tensors_are_accepted_as_images_and_labels():
    model = tiny_cnn()
    x = images(3)
    labels = np.array([2, 0, 1])
    ref = sc.compute_saliency(model, x, target="label", labels=labels)
    maps = sc.compute_saliency(
        model, K.convert_to_tensor(x), target="label", labels=K.convert_to_tensor(labels)
    )
    np.testing.assert_allclose(maps, ref, rtol=1e-6)
