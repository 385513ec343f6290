"""The face-quality set in two splits: the one the defaults were tuned on, and a held-out one.

``detect_faces``' defaults (``DEFAULT_THRESHOLD``, ``zoom``, ``max_side``)
were chosen on the photos of :func:`bench.faces.face_scenes` and
:func:`bench.faces.empty_scenes` (17 face-free photos at two sizes): that is
the **tuning** split, kept pixel for pixel as it was. A figure reported on it
measures the choice, not the detector.

The **held-out** split played no part in choosing any default:

- faces: LFW's faces 40-95 (the tuning split uses 0-39; new people), and the
  astronaut and cameraman composed again with other seeds, positions and
  backgrounds (the same two people as in the tuning split);
- backgrounds and face-free photos: scikit-image's sample images that the
  tuning split never used (the Shepp-Logan phantom, scikit-image's logo, a
  colour wheel, a chessboard, a motion-blurred clock, a retina's
  microaneurysms, a horse's silhouette), at two sizes;
- face-free photos with face-like things pasted into them at 64-224 px: a
  cat's face (scikit-image's ``chelsea``; the tuning split has the whole photo,
  not this cut-out on these backgrounds), the snake's head of scikit-image's
  logo, the phantom's head (an oval with two eye-like holes), and a drawn
  carnival mask (an oval with eye holes, nose and mouth). No package here
  ships photos of posters or statues: there are none of those.

Example:
    >>> faces, empty = held_out(quick=True)
    >>> all(s.name.startswith("held-out/") for s in faces + empty), any(not s.faces for s in empty)
    (True, True)
"""

from __future__ import annotations

import numpy as np

from bench.faces import (
    MEDIUM,
    SIZES,
    VARIANT_SIZES,
    VARIANTS,
    Box,
    Scene,
    _background,
    _crowd,
    _Cutout,
    _head,
    _place,
    _single,
)

HELD_OUT_PHOTOS = (
    "phantom",
    "logo",
    "colorwheel",
    "chessboard",
    "clock_motion",
    "microaneurysms",
    "horse",
)
# Boxes of the face-like things in their photos (x1, y1, x2, y2).
CAT_FACE: Box = (70.0, 20.0, 390.0, 300.0)  # chelsea, 451 x 300
SNAKE_HEAD: Box = (150.0, 90.0, 350.0, 270.0)  # logo, 500 x 500
PHANTOM_HEAD: Box = (40.0, 10.0, 360.0, 390.0)  # phantom, 400 x 400
LOOKALIKES = ("cat", "snake", "phantom", "mask")
LOOKALIKE_SIZES = (64, 128, 224)
_SEED = 7000  # the held-out compositions' random seeds start here
_FIRST_LFW = 40  # the tuning split's crowds use LFW's faces 0-39
_CROWDS = (24, 24, 28, 28, 32, 32, 32)
PREFIX = "held-out/"


def _mask() -> _Cutout:
    """A drawn carnival mask: a gold oval with two eye holes, a nose ridge and a mouth slit."""
    import cv2

    height, width = 240, 200
    pixels = np.zeros((height, width, 3), np.float32)
    alpha = np.zeros((height, width), np.float32)
    centre = (width // 2, height // 2)
    cv2.ellipse(pixels, centre, (96, 116), 0, 0, 360, (210, 170, 70), -1)
    cv2.ellipse(alpha, centre, (96, 116), 0, 0, 360, 1.0, -1)
    for x in (62, 138):
        cv2.ellipse(pixels, (x, 100), (24, 13), 0, 0, 360, (20, 15, 10), -1)
    cv2.line(pixels, (100, 110), (100, 150), (150, 110, 40), 5)
    cv2.ellipse(pixels, (100, 182), (32, 8), 0, 0, 360, (60, 20, 20), -1)
    return _Cutout(pixels, alpha, (4.0, 4.0, 196.0, 236.0))


def _lookalike(thing: str) -> _Cutout:
    if thing == "cat":
        return _head("chelsea", CAT_FACE, context=1.2)
    if thing == "snake":
        return _head("logo", SNAKE_HEAD, context=1.3)
    if thing == "phantom":
        return _head("phantom", PHANTOM_HEAD, context=1.05)
    return _mask()


def _with_lookalike(thing: str, size: int, index: int) -> Scene:
    """A face-free photo: a held-out background with ``thing`` pasted in, ``size`` px wide."""
    width, height = MEDIUM
    background = HELD_OUT_PHOTOS[index % len(HELD_OUT_PHOTOS)]
    canvas = _background(background, (width, height), bool(index % 2))
    rng = np.random.default_rng(_SEED + 500 + index)
    margin = 1.3 * size
    centre = (rng.uniform(margin, width - margin), rng.uniform(margin, height - margin))
    angle = float(rng.choice([-15.0, 0.0, 15.0]))
    _place(canvas, _lookalike(thing), size, angle, bool(index % 3 == 0), centre)
    return Scene(f"{PREFIX}{thing}-{size}px-on-{background}", canvas)


def held_out(quick: bool = False) -> tuple[list[Scene], list[Scene]]:
    """The held-out split: (photos with faces, face-free photos); ``quick``: a few of each."""
    sizes = (32, 96) if quick else SIZES
    variant_sizes = (64,) if quick else VARIANT_SIZES
    with_faces: list[Scene] = []
    index = 0
    for source in ("astronaut", "cameraman"):
        for size in sizes:
            with_faces.append(_single(source, size, "plain", index, HELD_OUT_PHOTOS, _SEED))
            index += 1
        for size in variant_sizes:
            for variant in VARIANTS:
                with_faces.append(_single(source, size, variant, index, HELD_OUT_PHOTOS, _SEED))
                index += 1
    crowds = _CROWDS[:2] if quick else _CROWDS
    with_faces += [
        _crowd(i, size, HELD_OUT_PHOTOS, _SEED, _FIRST_LFW) for i, size in enumerate(crowds)
    ]
    photos = HELD_OUT_PHOTOS[::3] if quick else HELD_OUT_PHOTOS
    empty = []
    for name in photos:
        for size, mirror in ((MEDIUM, False), ((2400, 1600), True)):
            pixels = _background(name, size, mirror)
            empty.append(Scene(f"{name}-{size[0]}x{size[1]}", pixels))
    things = [(t, s) for t in LOOKALIKES for s in ((128,) if quick else LOOKALIKE_SIZES)]
    empty += [_with_lookalike(t, s, i) for i, (t, s) in enumerate(things)]
    named = [_renamed(s) for s in with_faces]
    return named, [s if s.name.startswith(PREFIX) else _renamed(s) for s in empty]


def _renamed(scene: Scene) -> Scene:
    return Scene(PREFIX + scene.name, scene.pixels, scene.faces)


def lfw_faces_used(quick: bool = False) -> range:
    """The LFW faces the held-out crowds hold."""
    crowds = _CROWDS[:2] if quick else _CROWDS
    return range(_FIRST_LFW, _FIRST_LFW + 8 * len(crowds))


def lowest_passing(points: list[tuple[float, float]], limit: float) -> float | None:
    """The lowest threshold whose false positives per face-free photo are at most ``limit``.

    Args:
        points: ``(threshold, false positives per face-free photo)``.
        limit: the goal.

    Returns:
        That threshold (rounded to the grid), or None when none passes.
    """
    passing = [t for t, fp in sorted(points) if fp <= limit + 1e-12]
    return None if not passing else round(passing[0], 4)


# The thresholds swept: 0.05 .. 0.95, the range FaceParams allows, in steps of 0.05.
SWEEP = tuple(round(0.05 * i, 2) for i in range(1, 20))
