"""decode/encode: every input kind kpipe accepts, and every one it must refuse."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageFile

from eventing.contract import ObjectRef
from functions.errors import BadImage, ImageTooLarge
from functions.images import decode, encode
from functions.part import Picture

REF = ObjectRef("uploads", "photos/input.jpg")
LIMIT = 50_000_000


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _sixteen_bit(photo: npt.NDArray[np.uint8]) -> Image.Image:
    gray = photo.mean(axis=2).astype(np.uint16) * 257
    return Image.fromarray(gray)  # mode I;16


def _with_alpha(photo: npt.NDArray[np.uint8]) -> Image.Image:
    """The photo with a left-to-right alpha ramp (WebP drops an all-opaque alpha)."""
    alpha = np.broadcast_to(np.linspace(64, 255, photo.shape[1]).astype(np.uint8), photo.shape[:2])
    return Image.fromarray(np.dstack([photo, alpha]))


def _animated_gif(photo: npt.NDArray[np.uint8]) -> bytes:
    first = Image.fromarray(photo)
    second = Image.fromarray(255 - photo)
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=[second], duration=100)
    return buffer.getvalue()


# name -> (make bytes from the cat photo, expected channels, expected output format)
VARIANTS: dict[str, tuple[Callable[[npt.NDArray[np.uint8]], bytes], int, str]] = {
    "jpeg-rgb": (lambda p: _save(Image.fromarray(p), "JPEG"), 3, "jpeg"),
    "png-rgba": (lambda p: _save(_with_alpha(p), "PNG"), 4, "png"),
    "png-gray": (lambda p: _save(Image.fromarray(p).convert("L"), "PNG"), 3, "png"),
    "png-gray-alpha": (lambda p: _save(Image.fromarray(p).convert("LA"), "PNG"), 4, "png"),
    "png-palette": (lambda p: _save(Image.fromarray(p).convert("P"), "PNG"), 3, "png"),
    "png-palette-transparent": (
        lambda p: _save(Image.fromarray(p).convert("P"), "PNG", transparency=0),
        4,
        "png",
    ),
    "png-1bit": (lambda p: _save(Image.fromarray(p).convert("1"), "PNG"), 3, "png"),
    "png-16bit": (lambda p: _save(_sixteen_bit(p), "PNG"), 3, "png"),
    "jpeg-cmyk": (lambda p: _save(Image.fromarray(p).convert("CMYK"), "JPEG"), 3, "jpeg"),
    "jpeg-gray": (lambda p: _save(Image.fromarray(p).convert("L"), "JPEG"), 3, "jpeg"),
    "webp": (lambda p: _save(Image.fromarray(p), "WEBP"), 3, "webp"),
    "webp-alpha": (lambda p: _save(_with_alpha(p), "WEBP"), 4, "webp"),
    "gif-animated": (_animated_gif, 3, "png"),
    "bmp": (lambda p: _save(Image.fromarray(p), "BMP"), 3, "png"),
    "tiff": (lambda p: _save(Image.fromarray(p), "TIFF"), 3, "png"),
}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, cat: npt.NDArray[np.uint8]) -> tuple[bytes, int, str]:
    make, channels, fmt = VARIANTS[request.param]
    return make(cat), channels, fmt


def test_decode_accepts_variant(
    variant: tuple[bytes, int, str], cat: npt.NDArray[np.uint8]
) -> None:
    data, channels, fmt = variant
    picture = decode(data, REF, LIMIT)
    assert picture.pixels.dtype == np.uint8
    assert picture.pixels.shape == (*cat.shape[:2], channels)
    assert picture.format == fmt
    assert picture.ref == REF
    # Every variant is still the cat photo: its brightness survives the conversion.
    luma = picture.pixels[:, :, :3].mean()
    assert abs(luma - cat.mean()) < 25


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    ramp = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    picture = decode(_save(Image.fromarray(ramp), "PNG"), REF, LIMIT)
    assert picture.pixels[0, :, 0].tolist() == [0, 1, 128, 255]


def test_palette_transparency_becomes_alpha() -> None:
    image = Image.new("P", (4, 2), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((3, 1), 1)
    picture = decode(_save(image, "PNG", transparency=0), REF, LIMIT)
    assert picture.pixels[0, 0].tolist() == [255, 0, 0, 0]
    assert picture.pixels[1, 3].tolist() == [0, 0, 255, 255]


def test_cmyk_colours_are_converted() -> None:
    red = np.zeros((16, 16, 3), np.uint8)
    red[:, :, 0] = 255
    data = _save(Image.fromarray(red).convert("CMYK"), "JPEG", quality=95)
    picture = decode(data, REF, LIMIT)
    assert np.abs(picture.pixels.astype(int) - red).max() < 8


# EXIF orientation -> what numpy does to the stored pixels to show them upright.
ORIENTATIONS: dict[int, Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]] = {
    3: lambda a: np.rot90(a, 2),
    6: lambda a: np.rot90(a, -1),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied(orientation: int, cat: npt.NDArray[np.uint8]) -> None:
    stored = np.ascontiguousarray(cat[:200, :300])
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _save(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    picture = decode(data, REF, LIMIT)
    upright = ORIENTATIONS[orientation](stored)
    assert picture.pixels.shape == upright.shape
    assert np.abs(picture.pixels.astype(int) - upright).mean() < 4


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""
    data = bytearray(_save(Image.new("L", (8, 8)), "PNG"))
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


@pytest.mark.parametrize(
    ("width", "height", "limit"),
    [
        pytest.param(8000, 8000, LIMIT, id="over-our-limit"),
        pytest.param(12000, 12000, LIMIT, id="over-pillow-warning"),
        pytest.param(30000, 30000, LIMIT, id="over-pillow-error"),
        pytest.param(100, 100, 5000, id="small-limit"),
    ],
)
def test_too_large_is_refused_before_decoding(width: int, height: int, limit: int) -> None:
    with pytest.raises(ImageTooLarge) as caught:
        decode(_png_declaring(width, height), REF, limit)
    assert str(REF) in str(caught.value)


def _truncated(fmt: str) -> Callable[[npt.NDArray[np.uint8]], bytes]:
    def make(photo: npt.NDArray[np.uint8]) -> bytes:
        data = _save(Image.fromarray(photo), fmt)
        return data[: len(data) // 2]

    return make


NOT_IMAGES: dict[str, Callable[[npt.NDArray[np.uint8]], bytes]] = {
    "empty": lambda _: b"",
    "truncated-jpeg": _truncated("JPEG"),
    "truncated-png": _truncated("PNG"),
    "text": lambda _: b"just some words, not a picture\n" * 10,
    "pdf": lambda _: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
    "html": lambda _: b"<!doctype html><html><body><img src='cat.jpg'></body></html>",
    "jpeg-header-only": lambda p: _save(Image.fromarray(p), "JPEG")[:200],
}


@pytest.mark.parametrize("kind", sorted(NOT_IMAGES))
def test_not_an_image_is_refused(kind: str, cat: npt.NDArray[np.uint8]) -> None:
    with pytest.raises(BadImage) as caught:
        decode(NOT_IMAGES[kind](cat), REF, LIMIT)
    assert type(caught.value) is BadImage
    assert str(REF) in str(caught.value)
    assert caught.value.reason


def test_truncated_images_are_not_loaded_anyway() -> None:
    # The decoder relies on Pillow refusing truncated files.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [("jpeg", "image/jpeg", ".jpg"), ("png", "image/png", ".png"), ("webp", "image/webp", ".webp")],
)
def test_encode_names_its_format(
    fmt: str, content_type: str, extension: str, cat: npt.NDArray[np.uint8]
) -> None:
    data, got_type, got_ext = encode(Picture(cat, "png"), fmt)
    assert (got_type, got_ext) == (content_type, extension)
    assert decode(data, REF, LIMIT).format == fmt


def test_encode_uses_picture_format_and_quality_90(cat: npt.NDArray[np.uint8]) -> None:
    default, _, ext = encode(Picture(cat, "jpeg"))
    assert ext == ".jpg"
    assert default == encode(Picture(cat, "jpeg"), "jpeg", 90)[0]
    assert len(encode(Picture(cat, "jpeg", quality=30))[0]) < len(default)


def test_jpeg_composites_alpha_on_white() -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)  # black, fully transparent
    rgba[:4, :, 3] = 255  # top half opaque black
    data, _, _ = encode(Picture(rgba, "jpeg"))
    pixels = decode(data, REF, LIMIT).pixels
    assert pixels[:2].max() < 20
    assert pixels[6:].min() > 235


def test_encode_refuses_unknown_format(cat: npt.NDArray[np.uint8]) -> None:
    with pytest.raises(ValueError, match="gif"):
        encode(Picture(cat, "png"), "gif")


@settings(max_examples=30, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from([3, 4]))))
def test_png_round_trip_is_exact(pixels: npt.NDArray[np.uint8]) -> None:
    data, _, _ = encode(Picture(pixels, "png"))
    assert np.array_equal(decode(data, REF, LIMIT).pixels, pixels)


def test_decoding_and_encoding_load_only_the_plugins_of_the_formats_used() -> None:
    # A fresh interpreter: Image.init() (every Pillow plugin) costs a cold part tens of ms.
    code = (
        "import io, sys\n"
        "import numpy as np\n"
        "from PIL import Image, TiffImagePlugin\n"
        "from eventing.contract import ObjectRef\n"
        "from functions.images import decode, encode\n"
        "out = io.BytesIO()\n"
        "Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out, format='TIFF')\n"
        "picture = decode(out.getvalue(), ObjectRef('b', 'k.tif'), 100)\n"
        "for fmt in ('jpeg', 'png', 'webp'):\n"
        "    encode(picture, fmt)\n"
        "print(' '.join(sorted(m for m in sys.modules if m.endswith('ImagePlugin'))))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    readers = {"Bmp", "Gif", "Jpeg", "Png", "Ppm", "Tiff", "WebP"}
    assert found == sorted(f"PIL.{name}ImagePlugin" for name in readers)
