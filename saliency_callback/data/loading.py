"""Reading the `explain` command's inputs from disk: the model, the image files, class names.

`load_model` loads a `.keras`/`.h5` file or a SavedModel directory, `model_input` reads the
image input it takes, `open_images` checks the image files (headers only) and `load_pixels`
decodes one, converted to the model's channels and resized. Every problem with an input is a
`LoadError` whose message says what is wrong and, where it helps, what to do; the command line
prints it as its one-line error.

TensorFlow, Keras and Pillow are imported when first needed, not with this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ImageFile",
    "LoadError",
    "ModelInput",
    "error_reason",
    "load_model",
    "load_pixels",
    "load_saved_model",
    "model_input",
    "open_images",
    "read_class_names",
    "resolve_size",
]


class LoadError(ValueError):
    """An input of `explain` is missing, unreadable or does not fit the others.

    Args:
        message: What went wrong and, where it helps, what to do.
        usage: Whether the fault is in how an option was written (the command line reports
            it as a usage error, exit status 2). Defaults to `False`.
    """

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def error_reason(err: BaseException) -> str:
    """The message of `err` on one line (its type's name when it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


@dataclass
class ImageFile:
    """One input image: its position, path, output name and size (after EXIF rotation).

    An image of a probe file has its `pixels` (uint8 `(H, W, C)`) and the path
    `probes.npz#INDEX`.
    """

    index: int
    path: str
    name: str
    width: int
    height: int
    pixels: np.ndarray | None = None


@dataclass
class ModelInput:
    """The model's input: `(height, width, channels)`, `None` where any size is accepted."""

    height: int | None
    width: int | None
    channels: int | None
    notes: list[str] = field(default_factory=list)


def _unique_names(paths: Sequence[str]) -> list[str]:
    """Output names from file names without extension, made unique (`a`, `a-2`, ...)."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0] or "image"
        count = seen.get(stem, 0) + 1
        seen[stem] = count
        names.append(stem if count == 1 else f"{stem}-{count}")
    # A generated "a-2" could collide with a real file named "a-2": number those again.
    taken: set[str] = set()
    for i, name in enumerate(names):
        candidate, k = name, 1
        while candidate in taken:
            k += 1
            candidate = f"{name}-{k}"
        taken.add(candidate)
        names[i] = candidate
    return names


def _probe_file_images(path: str) -> list[tuple[str, str, np.ndarray]]:
    """`(path#index, name, uint8 pixels)` of the probes of a probe file that are not skipped."""
    from saliency_callback.data.probe_file import ProbeFileError, read_probe_file

    try:
        probes = read_probe_file(path)
    except ProbeFileError as err:
        raise LoadError(str(err)) from None
    pixels = probes.uint8_images()
    return [
        (f"{path}#{i}", probes.names[i], pixels[i])
        for i in range(len(probes))
        if not probes.skipped[i]
    ]


def open_images(paths: Sequence[str]) -> list[ImageFile]:
    """Checks that every path exists and is an image (reads headers only).

    A probe file (`.npz` written by `saliency-callback annotate`) stands for its probes' images
    (skipped probes are left out).

    Args:
        paths: The image files, in the order given.

    Returns:
        One `ImageFile` per image, in the same order, with unique output names.

    Raises:
        LoadError: For a missing file, a directory or a file that is not an image.
    """
    from PIL import Image, UnidentifiedImageError

    from saliency_callback.data.probe_file import is_probe_file

    entries: list[tuple[str, str, np.ndarray | None]] = []
    for path in paths:
        if not os.path.exists(path):
            raise LoadError(f"image file not found: {path}")
        if os.path.isdir(path):
            raise LoadError(f"expected an image file, received a directory: {path}")
        if path.endswith(".npz") and is_probe_file(path):
            entries.extend(_probe_file_images(path))
        else:
            entries.append((path, path, None))
    names = _unique_names([name for _, name, _ in entries])
    files = []
    for index, ((path, _, pixels), name) in enumerate(zip(entries, names, strict=True)):
        if pixels is not None:
            h, w = pixels.shape[:2]
            files.append(ImageFile(index, path, name, w, h, pixels))
            continue
        try:
            with Image.open(path) as img:
                files.append(ImageFile(index, path, name, img.width, img.height))
        except UnidentifiedImageError:
            raise LoadError(f"not an image (or a format Pillow cannot read): {path}") from None
        except OSError as err:
            raise LoadError(f"cannot read image {path}: {error_reason(err)}") from None
    return files


def _pil_mode(channels: int | None) -> str:
    """The Pillow mode for a model's channels (1, 3 or 4; `None` means 3)."""
    return {1: "L", 3: "RGB", 4: "RGBA"}.get(channels or 3, "RGB")


def load_pixels(
    item: ImageFile, size: tuple[int, int] | None, channels: int | None
) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """Decodes an image file, converts it to the model's channels and resizes it.

    Sets `item.width` and `item.height` to the size after EXIF rotation. The preprocessing is:
    `ImageOps.exif_transpose`, `convert` to `"L"`/`"RGB"`/`"RGBA"`,
    `resize((W, H), BILINEAR)` when the size differs. 16-bit images are scaled to 8 bits.

    Args:
        item: The image file.
        size: `(height, width)` to resize to, or `None` to keep the image's size.
        channels: The model's channels (1, 3 or 4; `None` means 3).

    Returns:
        `(pixels uint8 (H, W, C), display uint8 RGB (H, W, 3), resized, converted)`.

    Raises:
        LoadError: If the file cannot be decoded.
    """
    from PIL import Image, ImageOps

    mode = _pil_mode(channels)
    try:
        with _open(item) as opened:
            img = ImageOps.exif_transpose(opened) or opened
            img.load()
            item.width, item.height = img.size
            original_mode = img.mode
            if img.mode in ("I", "F") or img.mode.startswith("I;16"):
                wide = np.asarray(img, dtype=np.float64)
                if wide.max(initial=0) > 255:
                    wide = wide / 257.0
                img = Image.fromarray(np.clip(np.round(wide), 0, 255).astype(np.uint8), "L")
            converted = original_mode != mode and not (original_mode == "P" and mode == "RGB")
            img = img.convert(mode)
            resized = False
            if size is not None and (img.height, img.width) != tuple(size):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                resized = True
            pixels = np.asarray(img, dtype=np.uint8)
            display = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:
        raise LoadError(f"cannot decode image {item.path}: {error_reason(err)}") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return pixels, display, resized, converted


def _open(item: ImageFile) -> Any:
    """The image as a Pillow image (a context manager): its file, or its probe file pixels."""
    from PIL import Image

    if item.pixels is None:
        return Image.open(item.path)
    px = item.pixels
    return Image.fromarray(np.ascontiguousarray(px[..., 0] if px.shape[-1] == 1 else px))


def read_class_names(text: str | None) -> list[str] | None:
    """Reads `--class-names`: comma-separated names, or a file with one name per line.

    Args:
        text: The option's value, or `None` when it was not given.

    Returns:
        The names, or `None` for `None`.

    Raises:
        LoadError: If the file cannot be read, or a name is empty (a usage error).
    """
    if text is None:
        return None
    if os.path.isfile(text):
        try:
            with open(text, encoding="utf-8") as fh:
                names = [line.strip() for line in fh if line.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise LoadError(f"cannot read --class-names file {text}: {error_reason(err)}") from None
    else:
        names = [n.strip() for n in text.split(",")]
    if not names or any(not n for n in names):
        raise LoadError(f"--class-names has an empty name: {text!r}", usage=True)
    return names


def _savedmodel_input_specs(fn: Any) -> list[Any]:
    """The `tf.TensorSpec`s of a SavedModel function's input signature, flattened."""
    import tensorflow as tf

    sig = getattr(fn, "structured_input_signature", None)
    if sig is None:
        sig = getattr(fn, "input_signature", None)
    if sig is None:
        concrete = list(getattr(fn, "concrete_functions", []) or [])
        sig = concrete[0].structured_input_signature if concrete else None
    return [s for s in tf.nest.flatten(sig) if isinstance(s, tf.TensorSpec)]


def load_saved_model(path: str, endpoint: str | None = None) -> Any:
    """Loads a TF SavedModel directory as a Keras model (`keras.layers.TFSMLayer` inside).

    Keras 3 cannot `load_model` a SavedModel; the endpoint (`serve` as written by
    `model.export`, else `serving_default`) is wrapped in a functional model with the
    endpoint's input shape. Its output is used as it is: SavedModels keep no pre-activation
    logits, so gradients are those of the saved output (probabilities for a softmax head).

    Args:
        path: The SavedModel directory.
        endpoint: The endpoint to call. Defaults to `None` (`serve`, else `serving_default`).

    Returns:
        A `keras.Model` with one image input and one output.

    Raises:
        LoadError: If it cannot be loaded, or its endpoint is not one image tensor in and one
            tensor out.
    """
    import keras
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(path)
    except Exception as err:
        raise LoadError(f"cannot load the SavedModel {path}: {error_reason(err)}") from None
    signatures = list(getattr(loaded, "signatures", {}).keys())
    if endpoint is None:
        if hasattr(loaded, "serve"):
            endpoint = "serve"
        elif "serving_default" in signatures:
            endpoint = "serving_default"
        elif signatures:
            endpoint = signatures[0]
        else:
            raise LoadError(
                f"the SavedModel {path} has no 'serve' endpoint and no signatures; export it "
                "with model.export(path) or save it as .keras"
            )
    try:
        layer = keras.layers.TFSMLayer(path, call_endpoint=endpoint)
    except Exception as err:
        raise LoadError(f"cannot load the SavedModel {path}: {error_reason(err)}") from None
    specs = _savedmodel_input_specs(layer.call_endpoint_fn)
    if len(specs) != 1:
        raise LoadError(
            f"the SavedModel endpoint {endpoint!r} takes {len(specs)} tensors; expected one "
            "image batch"
        )
    spec = specs[0]
    if spec.shape.rank is None:
        raise LoadError(f"the SavedModel endpoint {endpoint!r} has an input of unknown rank")
    inp = keras.Input(shape=tuple(spec.shape)[1:], dtype=spec.dtype.name, name="image")
    out = layer(inp)
    if isinstance(out, dict):
        if len(out) != 1:
            raise LoadError(
                f"the SavedModel endpoint {endpoint!r} has {len(out)} outputs "
                f"({', '.join(sorted(out))}); expected one"
            )
        out = next(iter(out.values()))
    elif isinstance(out, (list, tuple)):
        if len(out) != 1:
            raise LoadError(
                f"the SavedModel endpoint {endpoint!r} has {len(out)} outputs; expected one"
            )
        out = out[0]
    name = os.path.basename(os.path.normpath(path)) or "saved_model"
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return keras.Model(inp, out, name=safe or "saved_model")


def load_model(path: str, endpoint: str | None = None) -> Any:
    """Loads a `.keras`/`.h5` file or a SavedModel directory for explaining.

    Args:
        path: The model file or directory.
        endpoint: SavedModel endpoint (see `load_saved_model`). Defaults to `None`.

    Returns:
        A `keras.Model`.

    Raises:
        LoadError: If the path is missing or is not a Keras model.
    """
    import keras

    if not os.path.exists(path):
        raise LoadError(f"model not found: {path}")
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return load_saved_model(path, endpoint)
        raise LoadError(
            f"not a Keras model: {path} is a directory without saved_model.pb; expected a "
            ".keras file or a SavedModel directory"
        )
    if not path.endswith((".keras", ".h5", ".hdf5")):
        raise LoadError(
            f"not a Keras model: {path}; expected a .keras (or .h5) file or a SavedModel directory"
        )
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if path.endswith(".keras") and not magic.startswith(b"PK"):
        raise LoadError(f"not a Keras model: {path} is not a .keras (zip) archive")
    if path.endswith((".h5", ".hdf5")) and magic != b"\x89HDF\r\n\x1a\n":
        raise LoadError(f"not a Keras model: {path} is not an HDF5 file")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as err:
        raise LoadError(f"not a Keras model (cannot load {path}): {error_reason(err)}") from None
    if not isinstance(model, keras.Model):
        raise LoadError(f"not a Keras model: {path} holds a {type(model).__name__}")
    return model


def model_input(model: Any) -> ModelInput:
    """Reads the image input shape of a model.

    Args:
        model: A `keras.Model`.

    Returns:
        Its input's height, width and channels (`None` where any is accepted).

    Raises:
        LoadError: If the model does not take one `(batch, H, W, C)` image input with 1, 3 or 4
            channels.
    """
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise LoadError("the model has no known input shape; save it with a keras.Input")
    if len(inputs) != 1:
        raise LoadError(
            f"the model's input does not fit images: it takes {len(inputs)} inputs, expected "
            "one image batch"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise LoadError(
            f"the model's input does not fit images: its input shape is {shape}, expected "
            "(batch, height, width, channels)"
        )
    _, h, w, c = shape
    if c is not None and c not in (1, 3, 4):
        raise LoadError(
            f"the model's input does not fit images: it expects {c} channels, images have "
            "1 (grayscale), 3 (RGB) or 4 (RGBA)"
        )
    return ModelInput(h, w, c)


def resolve_size(requested: tuple[int, int] | None, spec: ModelInput) -> tuple[int, int] | None:
    """The size to resize images to: `--size` if given, else the model's fixed input size.

    Args:
        requested: `(height, width)` from `--size`, or `None`.
        spec: The model's input.

    Returns:
        `(height, width)`, or `None` when the model accepts any size and none was requested
        (each image keeps its own).

    Raises:
        LoadError: If `requested` differs from a side the model fixes, or the model fixes
            only one side and no size was requested.
    """
    fixed = (spec.height, spec.width)
    if requested is not None:
        for got, want, what in zip(requested, fixed, ("height", "width"), strict=True):
            if want is not None and got != want:
                raise LoadError(
                    f"the model's input does not fit the images: --size "
                    f"{requested[0]}x{requested[1]} but the model expects {what} {want} "
                    f"(input {spec.height}x{spec.width})"
                )
        return requested
    if spec.height is not None and spec.width is not None:
        return spec.height, spec.width
    if spec.height is not None or spec.width is not None:
        raise LoadError(
            f"the model fixes only one side of its input ({spec.height}x{spec.width}); pass "
            "--size HxW"
        )
    return None
