"""Image bytes for the reliability tests: broken, hostile and odd-but-valid files.

Every valid picture here shows the same upright layout, a bright top half over
a dark bottom half, ``WIDTH`` x ``HEIGHT``, so a test can check by content that
the output is upright and is the first frame.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from PIL import Image

WIDTH, HEIGHT = 48, 32
BRIGHT, DARK = (230, 220, 210), (20, 30, 40)


def upright_rgb() -> npt.NDArray[np.uint8]:
    """The reference layout: bright top half, dark bottom half."""
    pixels = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    pixels[: HEIGHT // 2] = BRIGHT
    pixels[HEIGHT // 2 :] = DARK
    return pixels


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise_jpeg(size: int = 64, seed: int = 0) -> bytes:
    """A small, valid, incompressible JPEG."""
    rng = np.random.default_rng(seed)
    return save(Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)), "JPEG")


def _noise_png() -> bytes:
    rng = np.random.default_rng(1)
    return save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)), "PNG")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A grayscale PNG whose header declares ``width`` x ``height``.

    Without ``idat`` the pixel data is a few bytes only: a decoder that trusted
    the header would try to allocate the whole declared picture.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = idat if idat is not None else zlib.compress(b"\0" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def real_bomb(side: int = 8000) -> bytes:
    """A valid all-black ``side`` x ``side`` grayscale PNG: 64 MP in about 60 KB."""
    row = b"\0" * (side + 1)  # filter byte + samples
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return png_declaring(side, side, data)


# Broken inputs: (bytes, content type, expected error code).
BROKEN: dict[str, Callable[[], tuple[bytes, str, str]]] = {
    "truncated-jpeg": lambda: (
        noise_jpeg()[: len(noise_jpeg()) * 6 // 10],
        "image/jpeg",
        "bad_image",
    ),
    "truncated-png": lambda: (_noise_png()[: len(_noise_png()) // 2], "image/png", "bad_image"),
    "zero-bytes": lambda: (b"", "image/jpeg", "bad_image"),
    "text-as-jpeg": lambda: (b"just some words, not a picture\n" * 20, "image/jpeg", "bad_image"),
    "pdf-as-jpeg": lambda: (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
        "image/jpeg",
        "bad_image",
    ),
    "html-as-png": lambda: (
        b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
        "image/png",
        "bad_image",
    ),
    "bomb-header-100000x100000": lambda: (
        png_declaring(100_000, 100_000),
        "image/png",
        "image_too_large",
    ),
    "bomb-valid-8000x8000": lambda: (real_bomb(), "image/png", "image_too_large"),
}


def _cmyk() -> bytes:
    return save(Image.fromarray(upright_rgb()).convert("CMYK"), "JPEG", quality=95)


def _sixteen_bit() -> bytes:
    gray = np.empty((HEIGHT, WIDTH), np.uint16)
    gray[: HEIGHT // 2] = 60_000
    gray[HEIGHT // 2 :] = 5_000
    image = Image.fromarray(gray)
    assert image.mode.startswith("I;16")
    return save(image, "PNG")


def _palette() -> bytes:
    return save(Image.fromarray(upright_rgb()).convert("P", palette=Image.Palette.ADAPTIVE), "PNG")


def _alpha() -> bytes:
    rgba = np.dstack([upright_rgb(), np.full((HEIGHT, WIDTH), 200, np.uint8)])
    return save(Image.fromarray(rgba, "RGBA"), "PNG")


def _grayscale() -> bytes:
    return save(Image.fromarray(upright_rgb()).convert("L"), "JPEG", quality=95)


def _exif_rotated(orientation: int) -> Callable[[], bytes]:
    # What a camera stores: the sensor's pixels, and the tag that makes them upright.
    undo = {
        3: Image.Transpose.ROTATE_180,
        6: Image.Transpose.ROTATE_90,
        8: Image.Transpose.ROTATE_270,
    }

    def build() -> bytes:
        stored = Image.fromarray(upright_rgb()).transpose(undo[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        return save(stored, "JPEG", quality=95, exif=exif.tobytes())

    return build


def _animated_gif() -> bytes:
    first = Image.fromarray(upright_rgb())
    second = Image.fromarray(upright_rgb()[::-1].copy())  # dark on top
    return save(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


# Odd but valid inputs: (file extension, bytes).
ODD: dict[str, Callable[[], tuple[str, bytes]]] = {
    "cmyk-jpeg": lambda: (".jpg", _cmyk()),
    "16-bit-png": lambda: (".png", _sixteen_bit()),
    "palette-png": lambda: (".png", _palette()),
    "alpha-png": lambda: (".png", _alpha()),
    "grayscale-jpeg": lambda: (".jpg", _grayscale()),
    "exif-rotated-90": lambda: (".jpg", _exif_rotated(6)()),
    "exif-rotated-270": lambda: (".jpg", _exif_rotated(8)()),
    "exif-rotated-180": lambda: (".jpg", _exif_rotated(3)()),
    "animated-gif": lambda: (".gif", _animated_gif()),
}


def is_upright_layout(data: bytes) -> tuple[bool, str]:
    """Whether ``data`` decodes to the reference layout; and what was seen."""
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
        gray = np.asarray(image.convert("L"), np.float64)
    top, bottom = gray[: gray.shape[0] // 2].mean(), gray[gray.shape[0] // 2 :].mean()
    seen = f"size {size}, top mean {top:.0f}, bottom mean {bottom:.0f}"
    return size == (WIDTH, HEIGHT) and top > bottom + 100, seen
