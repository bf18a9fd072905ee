"""SaliencyCallback driven by real `fit` calls, read back with TensorBoard's reader."""

from __future__ import annotations

import csv
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import images, tiny_cnn
from tb_events import event_files, read_run, runs

import saliency_callback as sc
from saliency_callback.maps import metrics
from saliency_callback.training.callback import SaliencyCallback
from saliency_callback.training.options import Display, Runtime

N, SHAPE = 4, (12, 12, 3)


def compiled_cnn(**kw):
    model = tiny_cnn(shape=SHAPE, **kw)
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def train_data(n=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE)).astype(np.float32), rng.integers(0, 3, n)


def fit(model, cb, epochs=2, **kw):
    x, y = train_data()
    callbacks = cb if isinstance(cb, list) else [cb]
    return model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, callbacks=callbacks, **kw)


def probe_tags(n):
    return {f"saliency/confidence/probe_{i:02d}" for i in range(n)}


def test_fit_writes_the_exact_tags_steps_and_images(tmp_path):
    model = compiled_cnn()
    x = images(N, SHAPE)
    labels = np.array([0, 1, 2, 0])
    cb = SaliencyCallback(
        x,
        labels,
        log_dir=str(tmp_path),
        class_names=["a", "b", "c"],
        runtime=Runtime(strict=True),
    )
    fit(model, cb, epochs=3)
    run = read_run(str(tmp_path / "saliency"))
    assert run.tags == {
        "saliency/overview",
        "saliency/probes",
        "saliency/timeline",
        "saliency/probe_boxes",  # background tests on by default (no object found here)
        "saliency/confidence",
        "saliency/probe_accuracy",
        "saliency/hotspot",
        "saliency/hotspot_chance",
    } | probe_tags(N)
    for tag in ("saliency/overview", "saliency/probes"):
        assert [step for step, _ in run.images[tag]] == [0, 1, 2]
        assert "SmoothGrad(Vanilla(), n_samples=10" in run.descriptions[tag]  # the default
    assert all(len(imgs) == 1 for _, imgs in run.images["saliency/overview"])
    assert all(len(imgs) == N for _, imgs in run.images["saliency/probes"])
    # 12x12 probes are upscaled 6x to 72x72 tiles: caption strip + three tiles + separators.
    panel = run.images["saliency/probes"][-1][1][0]
    assert panel.shape[1] == 3 * 72 + 2 * 2 and panel.shape[0] > 72
    tile_top = panel.shape[0] - 72
    original = np.kron((x[0] * 255).round().astype(np.uint8), np.ones((6, 6, 1), np.uint8))
    left = panel[tile_top:, :72].astype(int)
    assert np.abs(left - original.astype(int)).max() <= 1
    overview = run.images["saliency/overview"][-1][1][0]
    assert overview.shape[0] >= panel.shape[0] and overview.shape[1] >= panel.shape[1]
    # Confidence scalars are the model's own probabilities on the probes after the last epoch.
    probs = model.predict(x, verbose=0)
    logged = [run.scalars[f"saliency/confidence/probe_{i:02d}"][-1][1] for i in range(N)]
    np.testing.assert_allclose(logged, probs.max(axis=1), rtol=1e-5)
    assert run.scalars["saliency/probe_accuracy"][-1][1] == pytest.approx(
        float((probs.argmax(1) == labels).mean())
    )


def test_overview_can_be_turned_off(tmp_path):
    cb = SaliencyCallback(
        images(N, SHAPE),
        log_dir=str(tmp_path),
        display=Display(overview=False),
        runtime=Runtime(strict=True),
    )
    fit(compiled_cnn(), cb, epochs=1)
    run = read_run(str(tmp_path / "saliency"))
    assert set(run.images) == {"saliency/probes", "saliency/timeline", "saliency/probe_boxes"}
    assert len(run.images["saliency/probes"][0][1]) == N


def test_overlay_differs_from_the_image_where_saliency_is_high(tmp_path):
    model = compiled_cnn()
    x = images(N, SHAPE)
    cb = SaliencyCallback(
        x,
        log_dir=str(tmp_path),
        display=Display(sigma=0, alpha=1.0),
        runtime=Runtime(strict=True),
    )
    fit(model, cb, epochs=1)
    panel = read_run(str(tmp_path / "saliency")).images["saliency/probes"][0][1][1]
    h = panel.shape[0]
    tile = lambda k: panel[h - 72 :, k * 74 : k * 74 + 72].astype(int)  # noqa: E731
    maps = np.kron(sc.compute_saliency(model, x[1:2])[0], np.ones((6, 6)))
    diff = np.abs(tile(2) - tile(0)).sum(-1)
    assert diff[maps > 0.8].mean() > 3 * diff[maps < 0.1].mean()
    assert (diff[maps == 0] == 0).all()


def test_freq_and_last_epoch_and_log_before_training(tmp_path):
    model = compiled_cnn()
    cb = SaliencyCallback(images(N, SHAPE), log_dir=str(tmp_path / "a"), freq=2)
    fit(model, cb, epochs=5)
    steps = [s for s, _ in read_run(str(tmp_path / "a" / "saliency")).images["saliency/probes"]]
    assert steps == [0, 2, 4]
    cb = SaliencyCallback(
        images(N, SHAPE),
        log_dir=str(tmp_path / "b"),
        freq=2,
        runtime=Runtime(log_before_training=True),
    )
    fit(model, cb, epochs=4)
    fit(model, cb, epochs=7, initial_epoch=4)
    run = read_run(str(tmp_path / "b" / "saliency"))
    # The second fit continues the first: the state after epoch 3 (its "before training") is
    # already logged at step 3, so it is not logged twice.
    assert sorted(s for s, _ in run.images["saliency/probes"]) == [-1, 0, 2, 3, 4, 6]
    assert len(event_files(str(tmp_path / "b" / "saliency"))) == 2  # one per fit


def test_coexists_with_keras_tensorboard_and_shares_steps(tmp_path):
    model = compiled_cnn()
    cb = SaliencyCallback(images(N, SHAPE), log_dir=str(tmp_path))
    x, y = train_data()
    model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=2,
        verbose=0,
        callbacks=[cb, keras.callbacks.TensorBoard(str(tmp_path))],
    )
    assert runs(str(tmp_path)) == {"train", "validation", "saliency"}
    keras_steps = [s for s, _ in read_run(str(tmp_path / "train")).scalars["epoch_loss"]]
    ours = [s for s, _ in read_run(str(tmp_path / "saliency")).scalars["saliency/confidence"]]
    assert ours == keras_steps == [0, 1]


def test_masks_give_metrics_in_scalars_logs_and_csv(tmp_path):
    model = compiled_cnn()
    x = images(N, SHAPE)
    masks = np.zeros((N, 12, 12), bool)
    masks[:, 3:9, 3:9] = True
    masks[3] = False  # an empty mask: no value for that probe (never NaN), never a crash
    csv_path = tmp_path / "log.csv"
    cb = SaliencyCallback(
        x,
        masks=masks,
        log_dir=str(tmp_path),
        runtime=Runtime(strict=True),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fit(model, [cb, keras.callbacks.CSVLogger(str(csv_path))], epochs=2)
    assert not [w for w in caught if "mass_in_mask" in str(w.message)]  # said when built
    run = read_run(str(tmp_path / "saliency"))
    raw = sc.compute_saliency(model, x, sc.methods.RECOMMENDED, normalize=None)  # the default
    expected = metrics.mass_in_mask(raw, masks)
    per_probe = [run.scalars[f"saliency/mass_in_mask/probe_{i:02d}"][-1][1] for i in range(3)]
    np.testing.assert_allclose(per_probe, expected[:3], rtol=1e-4)
    assert np.isnan(expected[3]) and "saliency/mass_in_mask/probe_03" not in run.scalars
    mean = run.scalars["saliency/mass_in_mask"][-1][1]
    assert mean == pytest.approx(np.nanmean(expected), rel=1e-4)
    assert run.scalars["saliency/mass_in_mask_chance"][-1][1] == pytest.approx(36 / 144)
    assert history.history["saliency_mass_in_mask"][-1] == pytest.approx(mean, rel=1e-6)
    for name in ("pointing_game", "rank_in_mask"):
        assert f"saliency/{name}" in run.scalars
        assert f"saliency_{name}" in history.history
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["saliency_mass_in_mask"]) == pytest.approx(mean, rel=1e-5)


def test_reuse_across_fits_without_retracing(tmp_path):
    model = compiled_cnn()
    cb = SaliencyCallback(images(N, SHAPE), log_dir=str(tmp_path), method="smoothgrad")
    fit(model, cb, epochs=2)
    traces = cb._explainer.tracing_count
    fit(model, cb, epochs=4, initial_epoch=2)
    assert cb._explainer.tracing_count == traces
    steps = [s for s, _ in read_run(str(tmp_path / "saliency")).scalars["saliency/confidence"]]
    assert sorted(steps) == [0, 1, 2, 3]  # two event files, one per fit


def test_no_files_until_the_first_write(tmp_path):
    log_dir = tmp_path / "logs"
    cb = SaliencyCallback(images(N, SHAPE), log_dir=str(log_dir))
    cb.set_model(compiled_cnn())
    cb.on_train_begin()
    cb.on_train_end()
    assert not log_dir.exists()


def test_no_batch_hook_but_one_that_keeps_asynchronous_dispatch(monkeypatch):
    from keras.src.callbacks import callback_list

    # Keras dispatches asynchronously only on thread-safe backends; ask it as if this were one.
    monkeypatch.setattr(callback_list.backend, "IS_THREAD_SAFE", True)
    cb = SaliencyCallback(images(N, SHAPE))
    for hook in (
        "on_batch_begin",
        "on_batch_end",
        "on_train_batch_end",
        "on_test_batch_begin",
        "on_test_batch_end",
        "on_predict_batch_begin",
        "on_predict_batch_end",
    ):
        assert getattr(type(cb), hook) is getattr(keras.callbacks.Callback, hook), hook
    # The one batch hook (the epoch-start watch) leaves Keras's asynchronous dispatch on, as
    # Keras itself decides it.
    assert type(cb).on_train_batch_begin is not keras.callbacks.Callback.on_train_batch_begin
    model = compiled_cnn()
    assert keras.callbacks.CallbackList([cb], model=model)._async_train

    class EndHook(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    assert not keras.callbacks.CallbackList([EndHook()], model=model)._async_train  # control


def test_dataset_probes_equal_array_probes(tmp_path):
    x = images(6, SHAPE)
    y = np.array([0, 1, 2, 0, 1, 2])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    from_ds = SaliencyCallback(ds, num_probes=5, log_dir=str(tmp_path))
    np.testing.assert_array_equal(from_ds.probes.images, x[:5])
    np.testing.assert_array_equal(from_ds.probes.labels, y[:5])
    unbatched = SaliencyCallback(tf.data.Dataset.from_tensor_slices(x), log_dir=str(tmp_path))
    assert len(unbatched.probes) == 6


def test_grayscale_uint8_probes_render(tmp_path):
    keras.utils.set_random_seed(0)
    inp = keras.Input((10, 10, 1))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    model.compile("sgd", "sparse_categorical_crossentropy")
    probes = (np.random.default_rng(0).random((3, 10, 10)) * 255).astype(np.uint8)
    cb = SaliencyCallback(
        probes,
        log_dir=str(tmp_path),
        runtime=Runtime(strict=True),
    )
    model.fit(
        probes.astype("float32")[..., None],
        np.array([0, 1, 0]),
        epochs=1,
        verbose=0,
        callbacks=[cb],
    )
    panel = read_run(str(tmp_path / "saliency")).images["saliency/probes"][0][1][2]
    top = panel.shape[0] - 70
    left = panel[top:, :70].astype(int)
    expected = np.kron(probes[2], np.ones((7, 7), np.uint8)).astype(int)
    for c in range(3):
        assert np.abs(left[..., c] - expected).max() <= 1


def test_errors_in_the_epoch_work_warn_and_training_continues(tmp_path, monkeypatch):
    model = compiled_cnn()
    cb = SaliencyCallback(images(N, SHAPE), log_dir=str(tmp_path))

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    cb.on_train_begin = _wrap_after(
        cb.on_train_begin, lambda: monkeypatch.setattr(cb._explainer, "explain_prepared", boom)
    )
    with pytest.warns(UserWarning, match=r"epoch \d failed.*disk on fire"):
        history = fit(model, cb, epochs=2)
    assert len(history.history["loss"]) == 2
    strict = SaliencyCallback(
        images(N, SHAPE),
        log_dir=str(tmp_path),
        runtime=Runtime(strict=True),
    )
    strict.on_train_begin = _wrap_after(
        strict.on_train_begin,
        lambda: monkeypatch.setattr(strict._explainer, "explain_prepared", boom),
    )
    with pytest.raises(RuntimeError, match="disk on fire"):
        fit(model, strict, epochs=1)


def _wrap_after(fn, after):
    def wrapped(*a, **k):
        fn(*a, **k)
        after()

    return wrapped


def test_nonfinite_model_outputs_skip_images_with_a_warning(tmp_path):
    model = compiled_cnn()
    cb = SaliencyCallback(
        images(N, SHAPE),
        log_dir=str(tmp_path),
        runtime=Runtime(strict=True),
    )
    cb.set_model(model)
    cb.on_train_begin()
    head = model.get_layer("head")
    head.bias.assign(np.full(head.bias.shape, np.nan, np.float32))
    with pytest.warns(UserWarning, match="epoch 0 .*NaN/inf"):
        cb.on_epoch_end(0, {})
    cb.on_train_end()
    run = read_run(str(tmp_path / "saliency"))
    assert "saliency/probes" not in run.images
    assert run.scalars["saliency/nonfinite"] == [(0, 1.0)]


BAD_CALLBACK_INPUTS = [
    ("freq 0", dict(freq=0), ValueError, "received freq=0"),
    ("freq float", dict(freq=1.5), TypeError, "freq=1.5"),
    ("log dir is a file", dict(log_dir="FILE"), ValueError, "which is a file"),
    ("negative sigma", dict(display=dict(sigma=-1)), ValueError, "sigma"),
    ("alpha", dict(display=dict(alpha=1.5)), ValueError, "alpha"),
    ("colormap", dict(display=dict(colormap="nope")), ValueError, "colormap"),
    ("method", dict(method="lime"), ValueError, "Unknown `method`: received 'lime'"),
    ("labels length", dict(labels=[0, 1]), ValueError, "`labels` of length 4"),
    (
        "masks shape",
        dict(masks=np.zeros((4, 6, 6))),
        ValueError,
        r"expected `masks` of shape \(4, 12, 12\), received \(4, 6, 6\)",
    ),
    ("masks values", dict(masks=np.full((4, 12, 12), 0.5)), ValueError, "only 0 and 1"),
    ("label target w/o labels", dict(target="label"), ValueError, "no `labels`"),
    (
        "mask alarm without masks",  # (a background alarm runs on proposed boxes)
        dict(alarm=dict(threshold=1.0, monitor="mass_in_mask")),
        ValueError,
        "needs `masks`",
    ),
    (
        "alarm threshold",
        dict(alarm=dict(threshold=2.0, monitor="mass_in_mask"), masks=np.ones((4, 12, 12))),
        ValueError,
        "threshold",
    ),
    (
        "patience",
        dict(alarm=dict(threshold=0.5, monitor="mass_in_mask", patience=0)),
        ValueError,
        "patience=0",
    ),
    ("class_names type", dict(class_names="abc"), TypeError, "class_names"),
    ("num_probes", dict(num_probes=0), ValueError, "num_probes"),
    ("batch size", dict(runtime=dict(batch_size=0)), ValueError, "batch_size=0"),
    ("images rank", dict(images=np.zeros((4, 12))), ValueError, "`images` of shape"),
    ("images nan", dict(images=np.full((4, 12, 12, 3), np.nan)), ValueError, "NaN"),
    ("run name", dict(runtime=dict(run_name="a/b")), ValueError, "run_name"),
    ("reduction", dict(display=dict(reduction="mean")), ValueError, "reduction"),
    ("display type", dict(display="viridis"), TypeError, "`display` to be a Display"),
    ("runtime type", dict(runtime={"batch_size"}), TypeError, "`runtime` to be a Runtime"),
    ("alarm type", dict(alarm="reliance"), TypeError, "`alarm` to be a ShortcutAlarm"),
    ("unknown keyword", dict(sigmaa=1.0), TypeError, "unexpected keyword argument 'sigmaa'"),
]
OPTION_TYPES = {"display": Display, "runtime": Runtime, "alarm": sc.ShortcutAlarm}


def make_callback(x, kwargs):
    """`SaliencyCallback(x, **kwargs)`, where `display=dict(...)` (and `runtime=`, `alarm=`)
    build the option object inside the call, so that its own validation is what fails."""
    kwargs = {
        k: OPTION_TYPES[k](**v) if k in OPTION_TYPES and isinstance(v, dict) else v
        for k, v in kwargs.items()
    }
    return SaliencyCallback(x, **kwargs)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [c[1:] for c in BAD_CALLBACK_INPUTS],
    ids=[c[0] for c in BAD_CALLBACK_INPUTS],
)
def test_bad_callback_arguments_fail_in_init(tmp_path, kwargs, error, match):
    kwargs = dict(kwargs)
    if kwargs.get("log_dir") == "FILE":
        (tmp_path / "file").write_text("x")
        kwargs["log_dir"] = str(tmp_path / "file")
    x = kwargs.pop("images", images(N, SHAPE))
    kwargs.setdefault("log_dir", str(tmp_path))
    with pytest.raises(error, match=match):
        make_callback(x, kwargs)


BAD_FOR_MODEL = [
    ("image size", dict(images=images(N, (16, 16, 3))), r"height 16 != 12"),
    ("channels", dict(images=images(N, (12, 12, 1))), r"channels 1 != 3"),
    ("label range", dict(labels=[0, 1, 2, 5]), r"\[0, 3\)"),
    ("class names", dict(class_names=["a", "b"]), "`class_names` of length 3"),
    ("gradcam layer", dict(method=sc.GradCAM("dense")), "Unknown Grad-CAM `layer`"),
    ("target range", dict(target=7), r"expected `target` in \[0, 3\)"),
]


@pytest.mark.parametrize(
    "kwargs,match", [c[1:] for c in BAD_FOR_MODEL], ids=[c[0] for c in BAD_FOR_MODEL]
)
def test_probes_that_do_not_fit_the_model_fail_before_the_first_epoch(tmp_path, kwargs, match):
    kwargs = dict(kwargs)
    x = kwargs.pop("images", images(N, SHAPE))
    cb = SaliencyCallback(x, log_dir=str(tmp_path), **kwargs)
    model = compiled_cnn()
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=match):
        fit(model, cb, epochs=1)
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # no epoch ran
    assert not os.path.exists(tmp_path / "saliency")


def test_alarm_fires_warns_and_stops_training(tmp_path):
    model = compiled_cnn()
    x = images(N, SHAPE)
    masks = np.zeros((N, 12, 12), bool)
    masks[:, :2, :2] = True  # a corner the model hardly looks at
    cb = SaliencyCallback(
        x,
        masks=masks,
        log_dir=str(tmp_path),
        alarm=sc.ShortcutAlarm(0.9, monitor="mass_in_mask", patience=2, stop_training=True),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fit(model, cb, epochs=6)
    assert len(history.history["loss"]) == 2  # stopped after the alarm at epoch 1
    messages = [str(w.message) for w in caught if "off the object" in str(w.message)]
    assert len(messages) == 1 and "after epoch 2 (step 1)" in messages[0]
    run = read_run(str(tmp_path / "saliency"))
    assert run.scalars["saliency/alarm"] == [(0, 0.0), (1, 1.0)]
    assert run.texts["saliency/alarm_message"][0][0] == 1
    quiet = SaliencyCallback(
        x,
        masks=masks,
        log_dir=str(tmp_path),
        alarm=sc.ShortcutAlarm(0.001, monitor="mass_in_mask"),
    )
    assert len(fit(model, quiet, epochs=3).history["loss"]) == 3
    assert quiet.alarm_events == []


def test_hotspot_of_a_model_that_reads_a_fixed_corner(tmp_path):
    """A model that only sees the top-left 3x3 corner: its saliency sits on the same pixels
    in every probe, so the mask-free hotspot is 1 and far above its chance level."""
    keras.utils.set_random_seed(0)
    inp = keras.Input(SHAPE)
    corner = keras.layers.Cropping2D(((0, SHAPE[0] - 3), (0, SHAPE[1] - 3)))(inp)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(corner))
    model = keras.Model(inp, out)
    model.compile("sgd", "sparse_categorical_crossentropy")
    cb = SaliencyCallback(
        images(N, SHAPE),
        log_dir=str(tmp_path),
        runtime=Runtime(strict=True),
    )
    history = fit(model, cb, epochs=1)
    scalars = read_run(str(tmp_path / "saliency")).scalars
    score, chance = scalars["saliency/hotspot"][0][1], scalars["saliency/hotspot_chance"][0][1]
    assert score == pytest.approx(1.0) and chance < 0.6
    assert history.history["saliency_hotspot"] == [pytest.approx(score)]
