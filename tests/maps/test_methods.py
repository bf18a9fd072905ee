"""Methods against independent truth: analytic gradients, finite differences, completeness."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import gradient, images, linear_model, tiny_cnn
from keras import ops as K

import saliency_callback as sc
from saliency_callback.maps.methods import get_method


def raw(model, x, method="vanilla", **kw):
    return sc.compute_saliency(model, x, method, reduction=None, **kw)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", None])
def test_linear_model_gradient_is_its_weights(activation):
    model = linear_model(activation=activation)
    x = images(4, (6, 5, 3))
    kernel = model.get_layer("head").kernel.numpy()  # (90, 4)
    for c in range(4):
        attr = raw(model, x, target=c)
        expected = np.broadcast_to(kernel[:, c].reshape(6, 5, 3), attr.shape)
        np.testing.assert_allclose(attr, expected, rtol=1e-5, atol=1e-6)
        maps = sc.compute_saliency(model, x, target=c, normalize=None)
        np.testing.assert_allclose(maps[0], np.abs(expected[0]).max(-1), rtol=1e-5)


def test_saturated_softmax_still_gives_logit_gradients():
    model = linear_model()
    head = model.get_layer("head")
    head.kernel.assign(head.kernel.numpy() * 1e4)  # probabilities saturate at 0/1
    x = images(3, (6, 5, 3))
    probs = model.predict(x, verbose=0)
    assert np.allclose(probs.max(axis=1), 1.0)
    # The probability's gradient has vanished...
    assert np.abs(gradient(lambda v: K.max(model(v), axis=1), x)).max() < 1e-6
    # ...the logit's has not: it is the kernel column of the predicted class.
    attr = raw(model, x)
    pred = probs.argmax(axis=1)
    for i, c in enumerate(pred):
        np.testing.assert_allclose(attr[i], head.kernel.numpy()[:, c].reshape(6, 5, 3), rtol=1e-5)


def test_separate_softmax_layer_is_stripped():
    keras.utils.set_random_seed(1)
    inp = keras.Input((4, 4, 1))
    logits = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, keras.layers.Softmax()(logits))
    x = images(2, (4, 4, 1))
    attr = raw(model, x, target=2)
    kernel = model.get_layer("logits").kernel.numpy()
    np.testing.assert_allclose(attr[1], kernel[:, 2].reshape(4, 4, 1), rtol=1e-5)


def finite_difference(model, x, c, eps=1e-3):
    """Central differences of the pre-softmax logit of class c, in float64 arithmetic."""
    logit_model = keras.Model(model.inputs, model.get_layer("head").input)
    kernel = model.get_layer("head").kernel.numpy().astype(np.float64)
    bias = model.get_layer("head").bias.numpy().astype(np.float64)

    def f(batch):
        feats = logit_model.predict(batch, verbose=0).astype(np.float64)
        return (feats @ kernel + bias)[:, c]

    flat = x.reshape(-1)
    grads = np.zeros_like(flat, dtype=np.float64)
    plus = np.repeat(x[None], flat.size, axis=0).reshape(flat.size, -1)
    minus = plus.copy()
    idx = np.arange(flat.size)
    plus[idx, idx] += eps
    minus[idx, idx] -= eps
    shape = (flat.size, *x.shape)
    grads = (f(plus.reshape(shape)) - f(minus.reshape(shape))) / (2 * eps)
    return grads.reshape(x.shape)


def test_vanilla_matches_finite_differences_on_a_cnn():
    model = tiny_cnn(shape=(6, 6, 2), classes=3)
    x = images(2, (6, 6, 2), seed=3)
    attr = raw(model, x, target=1)
    for i in range(2):
        fd = finite_difference(model, x[i], 1)
        np.testing.assert_allclose(attr[i], fd, rtol=2e-2, atol=2e-3 * np.abs(fd).max())


@pytest.mark.parametrize("baseline", [0.0, 0.5])
def test_integrated_gradients_completeness(baseline):
    model = tiny_cnn(classes=3)
    x = images(4)
    method = sc.IntegratedGradients(steps=32, baseline=baseline)
    explainer = sc.Explainer(model, method, target=2)
    result = explainer(x)
    logit_model = keras.Model(model.inputs, model.get_layer("head").input)
    head = model.get_layer("head")

    def logit(batch):
        return (logit_model.predict(batch, verbose=0) @ head.kernel.numpy() + head.bias.numpy())[
            :, 2
        ]

    expected = logit(x) - logit(np.full_like(x, baseline))
    total = result.attributions.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(total, expected, rtol=0.01, atol=1e-3 * np.abs(expected).max())
    np.testing.assert_allclose(result.scores, logit(x), rtol=1e-5)


def test_integrated_gradients_of_linear_model_is_exact():
    model = linear_model(activation=None)
    x = images(3, (6, 5, 3))
    attr = raw(model, x, sc.IntegratedGradients(steps=1), target=0)
    kernel = model.get_layer("head").kernel.numpy()[:, 0].reshape(6, 5, 3)
    np.testing.assert_allclose(attr, x * kernel, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("base", [sc.Vanilla(), sc.IntegratedGradients(steps=4), sc.GradCAM()])
def test_smoothgrad_with_zero_noise_equals_its_base(base):
    model = tiny_cnn()
    x = images(3)
    smooth = raw(model, x, sc.SmoothGrad(base, n_samples=5, noise_level=0.0), target=1)
    plain = raw(model, x, base, target=1)
    np.testing.assert_allclose(smooth, plain, rtol=1e-5, atol=1e-7)


def test_smoothgrad_is_deterministic_under_a_seed_and_changes_with_it():
    model = tiny_cnn()
    x = images(3)
    a = raw(model, x, sc.SmoothGrad(n_samples=6, seed=1))
    b = raw(model, x, sc.SmoothGrad(n_samples=6, seed=1))
    c = raw(model, x, sc.SmoothGrad(n_samples=6, seed=2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def quadratic_model():
    """Logits `W^T (x * x)`: the gradient `2 x W[:, c]` is linear in the input."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 5, 3))
    squares = keras.layers.Flatten()(keras.layers.Multiply()([inp, inp]))
    return keras.Model(inp, keras.layers.Dense(3, name="head")(squares))


@pytest.mark.parametrize("n_samples", [2, 4, 10])
def test_antithetic_pairs_are_exact_where_the_gradient_is_linear(n_samples):
    model = quadratic_model()
    x = images(3, (6, 5, 3))
    kernel = model.get_layer("head").kernel.numpy()[:, 1].reshape(6, 5, 3)
    analytic = 2 * x * kernel
    method = sc.SmoothGrad(n_samples=n_samples, noise_level=0.5, antithetic=True)
    np.testing.assert_allclose(raw(model, x, method, target=1), analytic, rtol=1e-4, atol=1e-5)
    # i.i.d. noise of the same cost is not exact: its mean noise is not zero.
    iid = raw(model, x, sc.SmoothGrad(n_samples=n_samples, noise_level=0.5), target=1)
    assert np.abs(iid - analytic).max() > 1e-2 * np.abs(analytic).max()


def test_antithetic_noise_bank_pairs_each_draw_with_its_negation():
    state = np.random.get_state()[1].copy()
    bank = sc.SmoothGrad(n_samples=6, seed=4, antithetic=True).noise_bank((4, 3, 2))
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched
    assert bank.shape == (6, 4, 3, 2) and bank.dtype == np.float32
    np.testing.assert_array_equal(bank[1::2], -bank[0::2])
    draws = np.random.default_rng(4).standard_normal((3, 4, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(bank[0::2], draws)
    # The i.i.d. bank is what it was before antithetic pairs existed.
    plain = sc.SmoothGrad(n_samples=6, seed=4).noise_bank((4, 3, 2))
    expected = np.random.default_rng(4).standard_normal((6, 4, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(plain, expected)


def test_antithetic_needs_an_even_count_and_a_bool():
    with pytest.raises(ValueError, match=r"even `n_samples`.*n_samples=5"):
        sc.SmoothGrad(n_samples=5, antithetic=True)
    with pytest.raises(TypeError, match="`antithetic` to be a bool, received 'yes'"):
        sc.SmoothGrad(n_samples=4, antithetic="yes")  # type: ignore[arg-type]
    assert sc.SmoothGrad(antithetic=True) != sc.SmoothGrad()
    assert sc.SmoothGrad(antithetic=True).cache_key() != sc.SmoothGrad().cache_key()
    assert "antithetic=True" in sc.SmoothGrad(antithetic=True).describe()
    assert "antithetic" not in sc.SmoothGrad().describe()


def test_smoothgrad_noise_is_relative_to_each_image_range():
    model = linear_model(activation=None)  # gradient is constant: SmoothGrad equals Vanilla
    x = images(2, (6, 5, 3)) * np.array([1.0, 255.0], np.float32)[:, None, None, None]
    attr = raw(model, x, sc.SmoothGrad(n_samples=4, noise_level=0.5), target=0)
    np.testing.assert_allclose(attr, raw(model, x, target=0), rtol=1e-4)


@pytest.mark.parametrize(
    "method",
    [
        "vanilla",
        "gradcam",
        sc.IntegratedGradients(steps=5),
        sc.SmoothGrad(n_samples=3),
        sc.SmoothGrad(sc.IntegratedGradients(steps=3), n_samples=2),
    ],
)
def test_batching_does_not_change_results(method):
    model = tiny_cnn()
    x = images(7)
    reference = raw(model, x, method, batch_size=1000)
    for batch_size in (1, 4, 7):
        np.testing.assert_allclose(
            raw(model, x, method, batch_size=batch_size), reference, rtol=1e-4, atol=1e-6
        )
    # Per-image results do not depend on the other images in the batch either.
    np.testing.assert_allclose(raw(model, x[2:3], method), reference[2:3], rtol=1e-4, atol=1e-6)


def test_gradcam_matches_a_hand_computation():
    model = tiny_cnn(smooth=False)
    x = images(2)
    result = sc.Explainer(model, sc.GradCAM(layer="conv1"), target=0, normalize=None)(x)
    feats = keras.Model(model.inputs, [model.get_layer("conv1").output, model.output])
    head = model.get_layer("head")
    sub = keras.Model(model.get_layer("conv2").input, model.get_layer("gap").output)
    acts = K.convert_to_numpy(feats(x)[0])
    grads = gradient(lambda a: (K.matmul(sub(a), head.kernel) + head.bias)[:, 0], acts)
    weights = grads.mean(axis=(1, 2))
    assert np.abs(weights).max() > 0, "a zero reference would prove nothing"
    cam = np.maximum(np.einsum("bhwk,bk->bhw", acts, weights), 0)
    # conv1 keeps the 12x12 size ("same" padding), so upsampling is the identity.
    np.testing.assert_allclose(result.attributions[..., 0], cam, rtol=1e-4, atol=1e-6)


def test_gradcam_uses_the_last_map_before_the_head_flattens_it():
    """Conv -> Conv -> BN -> ReLU -> MaxPool -> Flatten: the pooled map that the head reads
    (a VGG's `features[-1]`), not a layer before the BatchNorm."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inp)
    x = keras.layers.Conv2D(4, 3, name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))
    from saliency_callback.maps.graph import gradcam_layer_name

    assert gradcam_layer_name(model) == "pool"
    assert gradcam_layer_name(model, "relu") == "relu"
    maps = sc.compute_saliency(model, images(2, (16, 16, 3)), "gradcam")
    assert maps.shape == (2, 16, 16)


def test_gradcam_through_a_nested_base_model():
    keras.utils.set_random_seed(0)
    base_in = keras.Input((16, 16, 3))
    base = keras.Model(base_in, keras.layers.Conv2D(4, 3, activation="relu")(base_in), name="base")
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    maps = sc.compute_saliency(model, images(3, (16, 16, 3)), "gradcam")
    assert maps.shape == (3, 16, 16) and np.isfinite(maps).all()


def test_get_method_names_and_errors():
    assert get_method("vanilla") == sc.Vanilla()
    assert get_method("smoothgrad") == sc.SmoothGrad(sc.Vanilla())
    assert get_method("integrated_gradients") == sc.IntegratedGradients()
    assert get_method("gradcam") == sc.GradCAM()
    with pytest.raises(ValueError, match="Unknown `method`: received 'saliency'"):
        get_method("saliency")
    with pytest.raises(TypeError, match="`method`"):
        get_method(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_samples=0"):
        sc.SmoothGrad(n_samples=0)
    with pytest.raises(ValueError, match="noise_level=-1"):
        sc.SmoothGrad(noise_level=-1)
    with pytest.raises(ValueError, match="steps=0"):
        sc.IntegratedGradients(steps=0)
    with pytest.raises(TypeError, match="`base`"):
        sc.SmoothGrad("vanilla")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot itself be a SmoothGrad"):
        sc.SmoothGrad(sc.SmoothGrad())
