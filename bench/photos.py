"""The benchmark's 50 real photos at 1080p, built from scikit-image's sample photos.

Each photo is one of scikit-image's real photographs, scaled to cover
1920x1080, cropped (a different window per variant) and mirrored on odd
variants, then written as RGB JPEG at quality 90. The same inputs give the
same bytes every time.

Example:
    >>> photos = real_photos(2)
    >>> [name for name, _ in photos]
    ['astronaut-0', 'chelsea-0']
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import numpy.typing as npt
from PIL import Image

WIDTH, HEIGHT = 1920, 1080
QUALITY = 90
# Real photographs only (no synthetic images): colour first, then greyscale ones.
SOURCES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "motorcycle_left",
    "motorcycle_right",
    "camera",
    "coins",
    "moon",
    "clock",
    "page",
)
# Per variant: zoom beyond "cover" and where the crop window sits (0 left/top, 1 right/bottom).
_VARIANTS = ((1.0, 0.5, 0.5), (1.2, 0.2, 0.3), (1.4, 0.8, 0.6), (1.1, 0.6, 0.1))


@cache
def _source(name: str) -> npt.NDArray[np.uint8]:
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()  # type: ignore[no-untyped-call]
        pixels = left if name.endswith("left") else right
    else:
        pixels = getattr(data, name)()
    array = np.asarray(pixels, dtype=np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def render(name: str, variant: int) -> bytes:
    """One 1920x1080 JPEG from the sample photo ``name`` (see the module docstring)."""
    zoom, fx, fy = _VARIANTS[variant % len(_VARIANTS)]
    image = Image.fromarray(_source(name))
    scale = max(WIDTH / image.width, HEIGHT / image.height) * zoom
    size = (max(WIDTH, round(image.width * scale)), max(HEIGHT, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.LANCZOS)
    left = round((size[0] - WIDTH) * fx)
    top = round((size[1] - HEIGHT) * fy)
    image = image.crop((left, top, left + WIDTH, top + HEIGHT))
    if variant % 2:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()


def real_photos(count: int = 50) -> list[tuple[str, bytes]]:
    """``count`` (name, JPEG bytes) pairs, cycling through the sources, then the variants."""
    photos = []
    for i in range(count):
        name, variant = SOURCES[i % len(SOURCES)], i // len(SOURCES)
        photos.append((f"{name}-{variant}", render(name, variant)))
    return photos


def tiny_png() -> bytes:
    """An 8x8 PNG cut from a real photo: the input of the no-op chain (resize never upscales)."""
    image = Image.fromarray(_source("astronaut")).resize((8, 8), Image.Resampling.BOX)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
