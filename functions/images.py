"""Decoding uploaded bytes into pictures and encoding pictures back into bytes.

Pure functions on bytes and arrays, with Pillow: no I/O. Every picture that
leaves :func:`decode` is upright (EXIF orientation applied) and is an RGB or
RGBA ``uint8`` array, whatever the input's mode was.

Example:
    >>> import numpy as np
    >>> data, content_type, ext = encode(Picture(np.zeros((4, 6, 3), np.uint8), "png"))
    >>> (content_type, ext, decode(data, ObjectRef("bucket", "key.png"), 100).width)
    ('image/png', '.png', 6)
"""

from __future__ import annotations

import io
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from eventing.contract import ObjectRef
from functions.errors import BadImage, ImageTooLarge
from functions.part import Picture

ImageFormat: TypeAlias = Literal["jpeg", "png", "webp"]

DEFAULT_QUALITY = 90

# Formats Pillow may try; anything else (PDF, HTML, exotic decoders) is refused
# before a decoder runs. The JPEG opener also yields MPO, what many cameras
# write: a JPEG with extra frames.
_READABLE = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# The output format an input keeps; inputs we cannot write (gif, bmp, tiff) become png.
_OUTPUT_FORMAT: dict[str, ImageFormat] = {"JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}
_WRITERS: dict[str, tuple[str, str, str]] = {
    "jpeg": ("JPEG", "image/jpeg", ".jpg"),
    "png": ("PNG", "image/png", ".png"),
    "webp": ("WEBP", "image/webp", ".webp"),
}


def decode(data: bytes, ref: ObjectRef, max_pixels: int) -> Picture:
    """Decode an uploaded image into an upright RGB or RGBA picture.

    Args:
        data: The object's bytes.
        ref: The object the bytes came from, named in errors.
        max_pixels: The most pixels (width x height) an image may declare.

    Returns:
        The first frame, upright, as an ``H x W x 3|4`` uint8 picture.

    Raises:
        ImageTooLarge: The header declares more than ``max_pixels`` pixels.
        BadImage: The bytes are empty, truncated or not an image.
    """
    if not data:
        raise BadImage(ref, "the object is empty")
    # Never decode a truncated file into a half-grey picture; the flag is
    # process-wide, so refuse to run if some other code switched it on.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay off")
    _load_plugins()
    try:
        # Image.open reads only the header; Pillow's own bomb check runs here
        # with its global limit, which we leave alone (changing it would leak
        # into every thread). Our limit is checked below, before any decoding.
        image = Image.open(io.BytesIO(data), formats=_READABLE)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(ref, str(exc)) from None
    except UnidentifiedImageError:
        raise BadImage(ref, "not a JPEG, PNG, WebP, GIF, BMP or TIFF image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImage(ref, f"unreadable header: {exc}") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                ref, f"{width}x{height} is more than the {max_pixels} pixels allowed"
            )
        fmt = _OUTPUT_FORMAT.get(image.format or "", "png")
        try:
            image.load()  # the full decode: this is where truncation shows
            # In place: without, Pillow returns a copy even of an upright picture.
            ImageOps.exif_transpose(image, in_place=True)
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(ref, str(exc)) from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise BadImage(ref, f"cannot decode: {exc}") from None
        return Picture(pixels=_to_array(image), format=fmt, ref=ref)


def encode(
    picture: Picture, fmt: str | None = None, quality: int | None = None
) -> tuple[bytes, str, str]:
    """Encode a picture as JPEG, PNG or WebP.

    Args:
        picture: What to encode.
        fmt: ``jpeg``, ``png`` or ``webp``; the picture's own format if None.
        quality: JPEG/WebP quality 1..100; the picture's, else 90, if None.

    Returns:
        The bytes, their content type and the file extension (``.jpg`` ...).

    Raises:
        ValueError: ``fmt`` is not one of the three formats.
    """
    fmt = fmt or picture.format
    if fmt not in _WRITERS:
        raise ValueError(f"cannot encode {fmt!r}: use one of {sorted(_WRITERS)}")
    pil_format, content_type, extension = _WRITERS[fmt]
    quality = quality or picture.quality or DEFAULT_QUALITY
    pixels = picture.pixels
    if fmt == "jpeg" and pixels.shape[2] == 4:
        pixels = _on_white(pixels)  # JPEG has no alpha channel
    buffer = io.BytesIO()
    options: dict[str, object] = {} if fmt == "png" else {"quality": quality}
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format=pil_format, **options)
    return buffer.getvalue(), content_type, extension


def _load_plugins() -> None:
    """Register the openers of :data:`_READABLE` (and the writers of :data:`_WRITERS`).

    Only those: ``Image.init()`` imports all of Pillow's 40-odd plugins, which
    costs a cold part tens of milliseconds. Pillow calls ``init()`` itself
    only for a format that is not registered yet. Idempotent.
    """
    Image.preinit()  # BMP, GIF, JPEG, PPM, PNG
    from PIL import TiffImagePlugin, WebPImagePlugin  # noqa: F401


def _to_array(image: Image.Image) -> npt.NDArray[np.uint8]:
    """Normalise any Pillow mode to an RGB or RGBA uint8 array."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _gray_to_rgb(_deep_to_uint8(image))
    # A palette or colour-key transparency ("transparency" in info) becomes a
    # real alpha channel; converting it to RGB would make Pillow warn and drop it.
    has_alpha = "A" in mode or "transparency" in image.info
    target = "RGBA" if has_alpha else "RGB"
    # convert() copies even to the mode the picture has; the array is one more copy.
    converted = image if mode == target else image.convert(target)
    return np.asarray(converted, dtype=np.uint8).copy()


def _deep_to_uint8(image: Image.Image) -> npt.NDArray[np.uint8]:
    """Scale 16-bit (or 32-bit) grey levels to 8 bits, keeping the full tonal range."""
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low or 1.0) * 255.0
    else:
        # 16-bit samples live in 0..65535 whether Pillow calls the mode I;16 or I.
        scaled = np.clip(values, 0, 65535) / 257.0
    result: npt.NDArray[np.uint8] = np.rint(scaled).astype(np.uint8)
    return result


def _gray_to_rgb(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(np.repeat(gray[:, :, np.newaxis], 3, axis=2))


def _on_white(rgba: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Composite an RGBA array over a white background."""
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    rgb = rgba[:, :, :3].astype(np.float32)
    result: npt.NDArray[np.uint8] = np.rint(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return result
