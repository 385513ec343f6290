"""The face-quality set: real faces composed into real photos, and how detections are scored.

Every face is a real one that ships in scikit-image: the astronaut (Eileen
Collins, frontal), the cameraman (a man in near profile, looking into his
camera) and the 100 small faces of ``data.lfw_subset()`` (25 x 25, Labeled
Faces in the Wild). Each is cut out with its head around it, changed as a
photo could change it, and pasted with a soft edge into a face-free real
photo (rocket, coffee, a cat, motorcycles, brick ...):

- **sizes** 24 to 224 px of face width; faces of 24 and 32 px sit in
  2400 x 1600 photos (small faces in large photos);
- **flips**, **tilts** of +-30 degrees;
- **lighting**: the whole photo darkened (x0.35 and gamma 1.6), or grey;
- **occlusion**: a synthetic striped scarf over the mouth and chin.

The face-free set is the real photos themselves (17 of scikit-image's,
none with a human face, the cat included) at two sizes.

Ground truth: a hand-placed box per source face (brow line or hairline to
chin, cheek to cheek; the patch itself for the tightly cropped LFW faces). A
tilted face's box is the upright bounding box of the ellipse inscribed in its
rotated box, which is what a detector's upright box can reach.

Scoring (:func:`score`): in each photo, detections and true faces are
matched greedily by IoU (best pairs first, each used once); a pair counts
when its IoU is at least ``min_iou`` (0.4: Haar's tight square and CenterFace's
taller box of the same face overlap by 0.6-0.75, and a box that covers the
face's centre half still overlaps it by 0.4). Recall is matched faces over
all faces; false positives are unmatched detections, counted per face-free
photo (the goal) and per photo with faces.

Example:
    >>> scenes = face_scenes(quick=True)
    >>> sum(len(s.faces) for s in scenes) > 10, scenes[0].pixels.dtype
    (True, dtype('uint8'))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]
Pixels = npt.NDArray[np.uint8]

MIN_IOU = 0.4
# Hand-placed face boxes (x1, y1, x2, y2) in scikit-image's 512 x 512 photos.
ASTRONAUT_FACE: Box = (180.0, 66.0, 272.0, 178.0)
CAMERAMAN_FACE: Box = (185.0, 118.0, 257.0, 192.0)
# Face-free real photos: backgrounds for the composed faces, and the face-free set.
BACKGROUNDS = (
    "rocket",
    "coffee",
    "chelsea",
    "motorcycle_left",
    "motorcycle_right",
    "brick",
    "grass",
    "gravel",
    "clock",
    "coins",
)
FACE_FREE = (
    *BACKGROUNDS,
    "page",
    "text",
    "moon",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "cell",
)
SIZES = (24, 32, 48, 64, 96, 160, 224)
VARIANT_SIZES = (48, 96, 160)
VARIANTS = ("flip", "tilt+30", "tilt-30", "dark", "grey", "scarf")
LARGE = (2400, 1600)  # photos holding faces of 32 px and less
MEDIUM = (1280, 960)
SMALL = (1024, 768)
_LFW_PER_SCENE = 8


@dataclass(frozen=True)
class Face:
    """One true face: its box in the photo, and what was done to it."""

    box: Box
    source: str  # astronaut | cameraman | lfw
    size: int  # face width in pixels, before any tilt
    variant: str  # plain, flip, tilt+30, ...


@dataclass(frozen=True)
class Scene:
    """One test photo (``H x W x 3`` RGB) and the faces in it (none for a face-free photo)."""

    name: str
    pixels: Pixels = field(repr=False)
    faces: tuple[Face, ...] = ()


@dataclass(frozen=True)
class _Cutout:
    """A face with its surroundings: pixels, soft mask (0..1) and the face box in them."""

    pixels: npt.NDArray[np.float32]
    mask: npt.NDArray[np.float32]
    face: Box


# Sample images that ship in scikit-image's wheel without a loader function of their own.
_FILES = {
    "phantom": "phantom.png",
    "colorwheel": "color.png",
    "chessboard": "chessboard_RGB.png",
    "clock_motion": "clock_motion.png",
}


@cache
def _photo(name: str) -> Pixels:
    """A scikit-image photo as ``H x W x 3`` uint8 RGB."""
    from skimage import data

    if name in _FILES:
        from pathlib import Path

        from skimage import io

        raw = io.imread(Path(data.__file__).parent / _FILES[name])
    elif name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()  # type: ignore[no-untyped-call]
        raw = left if name.endswith("left") else right
    elif name == "cameraman":
        raw = data.camera()  # type: ignore[no-untyped-call]
    else:
        raw = getattr(data, name)()
    array = np.asarray(raw)
    if array.dtype != np.uint8:
        array = (array * 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


@cache
def _lfw() -> npt.NDArray[np.float32]:
    """The 100 real faces of ``data.lfw_subset()`` (the first 100 of its 200 patches), 0..255."""
    from skimage import data

    faces = np.asarray(data.lfw_subset()[:100], dtype=np.float32) * 255.0  # type: ignore[no-untyped-call]
    return np.repeat(faces[:, :, :, None], 3, axis=3)


def _head(name: str, face: Box, context: float = 2.2) -> _Cutout:
    """The face of a 512 x 512 photo with its head around it, under a soft elliptical mask."""
    photo = _photo(name).astype(np.float32)
    x1, y1, x2, y2 = face
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * context
    left, top = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    right = min(photo.shape[1], round(cx + side / 2))
    bottom = min(photo.shape[0], round(cy + side / 2))
    crop = photo[top:bottom, left:right]
    h, w = crop.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.hypot((xx - (cx - left)) / (w / 2), (yy - (cy - top)) / (h / 2))
    mask = np.clip((1.0 - dist) / 0.25, 0.0, 1.0)  # opaque centre, fading over the outer quarter
    return _Cutout(crop, mask, (x1 - left, y1 - top, x2 - left, y2 - top))


def _lfw_face(index: int) -> _Cutout:
    """One LFW patch; it is the face box itself, so only its outermost pixel is feathered."""
    patch = _lfw()[index]
    mask = np.ones(patch.shape[:2], np.float32)
    mask[[0, -1], :] = mask[:, [0, -1]] = 0.5
    return _Cutout(patch, mask, (0.0, 0.0, float(patch.shape[1]), float(patch.shape[0])))


def _scarf(cut: _Cutout, seed: int) -> _Cutout:
    """A striped cloth band from just under the nose to below the chin."""
    x1, y1, x2, y2 = cut.face
    w, h = x2 - x1, y2 - y1
    pixels = cut.pixels.copy()
    top, bottom = round(y1 + 0.62 * h), min(pixels.shape[0], round(y2 + 0.15 * h))
    left, right = max(0, round(x1 - 0.1 * w)), min(pixels.shape[1], round(x2 + 0.1 * w))
    rng = np.random.default_rng(seed)
    colour = rng.uniform(40, 220, 3).astype(np.float32)
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
    stripes = 0.75 + 0.25 * np.sin((xx + yy) / max(2.0, w / 12))
    pixels[top:bottom, left:right] = colour * stripes[:, :, None]
    return _Cutout(pixels, cut.mask, cut.face)


def _place(
    canvas: Pixels,
    cut: _Cutout,
    size: int,
    angle: float,
    flip: bool,
    centre: tuple[float, float],
) -> Box:
    """Paste ``cut`` scaled to a ``size`` px wide face, mirrored, tilted; the face's true box."""
    pixels, mask, (x1, y1, x2, y2) = cut.pixels, cut.mask, cut.face
    if flip:
        pixels, mask = pixels[:, ::-1], mask[:, ::-1]
        x1, x2 = pixels.shape[1] - x2, pixels.shape[1] - x1
    factor = size / (x2 - x1)
    fcx, fcy = (x1 + x2) / 2 * factor, (y1 + y2) / 2 * factor
    half_w, half_h = (x2 - x1) * factor / 2, (y2 - y1) * factor / 2
    # Map the cutout so the face centre lands on ``centre``, rotated by ``angle``.
    rotation = np.asarray(cv2.getRotationMatrix2D((fcx, fcy), angle, 1.0), np.float64)
    rotation[:, 2] += (centre[0] - fcx, centre[1] - fcy)
    matrix = rotation @ np.diag([factor, factor, 1.0])
    # Warp only into the part of the canvas the cutout covers.
    h, w = pixels.shape[:2]
    corners = matrix @ np.array([[0, w, 0, w], [0, 0, h, h], [1, 1, 1, 1]], np.float64)
    left, top = (max(0, math.floor(v) - 1) for v in corners.min(axis=1))
    right = min(canvas.shape[1], math.ceil(corners[0].max()) + 1)
    bottom = min(canvas.shape[0], math.ceil(corners[1].max()) + 1)
    matrix[:, 2] -= (left, top)
    size_wh = (right - left, bottom - top)
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    warped = cv2.warpAffine(np.ascontiguousarray(pixels), matrix, size_wh, flags=interpolation)
    alpha = cv2.warpAffine(np.ascontiguousarray(mask), matrix, size_wh, flags=cv2.INTER_LINEAR)
    region = canvas[top:bottom, left:right].astype(np.float32)
    blended = region * (1.0 - alpha[:, :, None]) + warped * alpha[:, :, None]
    canvas[top:bottom, left:right] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    theta = math.radians(angle)
    ext_w = math.hypot(half_w * math.cos(theta), half_h * math.sin(theta))
    ext_h = math.hypot(half_w * math.sin(theta), half_h * math.cos(theta))
    return (centre[0] - ext_w, centre[1] - ext_h, centre[0] + ext_w, centre[1] + ext_h)


def _background(name: str, size: tuple[int, int], mirror: bool = False) -> Pixels:
    """A face-free photo scaled to cover ``size`` and centre-cropped."""
    photo = _photo(name)
    width, height = size
    scale = max(width / photo.shape[1], height / photo.shape[0])
    scaled_size = (math.ceil(photo.shape[1] * scale), math.ceil(photo.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(photo, scaled_size, interpolation=interpolation)
    left, top = (scaled.shape[1] - width) // 2, (scaled.shape[0] - height) // 2
    crop = scaled[top : top + height, left : left + width]
    return np.ascontiguousarray(crop[:, ::-1] if mirror else crop)


def _finish(canvas: Pixels, variant: str) -> Pixels:
    """Lighting applied to the whole photo."""
    if variant == "dark":
        table = np.rint(255.0 * (np.arange(256) / 255.0) ** 1.6 * 0.35).astype(np.uint8)
        return np.asarray(table[canvas], dtype=np.uint8)
    if variant == "grey":
        grey = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    return canvas


def _scene_size(face_size: int) -> tuple[int, int]:
    if face_size <= 32:
        return LARGE
    return MEDIUM if face_size <= 96 else SMALL


def _single(
    source: str,
    size: int,
    variant: str,
    index: int,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
    seed: int = 0,
) -> Scene:
    """One photo holding one astronaut or cameraman face, on ``backgrounds[index]``."""
    face_box = ASTRONAUT_FACE if source == "astronaut" else CAMERAMAN_FACE
    cut = _head(source, face_box)
    if variant == "scarf":
        cut = _scarf(cut, seed + index)
    width, height = _scene_size(size)
    rng = np.random.default_rng(seed + index)
    margin = 1.3 * size
    centre = (rng.uniform(margin, width - margin), rng.uniform(margin, height - margin))
    background = backgrounds[index % len(backgrounds)]
    canvas = _background(background, (width, height), bool(index % 2))
    angle = {"tilt+30": 30.0, "tilt-30": -30.0}.get(variant, 0.0)
    box = _place(canvas, cut, size, angle, variant == "flip", centre)
    name = f"{source}-{size}px-{variant}"
    return Scene(name, _finish(canvas, variant), (Face(box, source, size, variant),))


def _crowd(
    index: int,
    size: int,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
    seed: int = 0,
    first_face: int = 0,
) -> Scene:
    """A large photo with eight small LFW faces on a grid, every other one mirrored.

    The faces are LFW's ``first_face + 8 * index`` and the seven after it.
    """
    width, height = LARGE
    canvas = _background(backgrounds[(index + 3) % len(backgrounds)], (width, height))
    rng = np.random.default_rng(seed + 1000 + index)
    faces = []
    for k in range(_LFW_PER_SCENE):
        col, row = k % 4, k // 4
        centre = (
            (col + 0.5) * width / 4 + rng.uniform(-80, 80),
            (row + 0.5) * height / 2 + rng.uniform(-150, 150),
        )
        face_index = first_face + index * _LFW_PER_SCENE + k
        box = _place(canvas, _lfw_face(face_index), size, 0.0, bool(k % 2), centre)
        faces.append(Face(box, "lfw", size, "plain"))
    return Scene(f"lfw-{size}px-{index}", _finish(canvas, "plain"), tuple(faces))


def face_scenes(quick: bool = False) -> list[Scene]:
    """Every photo with faces (see the module docstring); ``quick``: a few of each kind.

    The same call gives the same pixels every time.
    """
    sizes = (24, 64, 160) if quick else SIZES
    variant_sizes = (96,) if quick else VARIANT_SIZES
    scenes = [
        Scene(f"{name}-original", _photo(name), (Face(box, name, round(box[2] - box[0]), "plain"),))
        for name, box in (("astronaut", ASTRONAUT_FACE), ("cameraman", CAMERAMAN_FACE))
    ]
    index = 0
    for source in ("astronaut", "cameraman"):
        for size in sizes:
            scenes.append(_single(source, size, "plain", index))
            index += 1
        for size in variant_sizes:
            for variant in VARIANTS:
                scenes.append(_single(source, size, variant, index))
                index += 1
    crowds = ((0, 24), (1, 32)) if quick else ((0, 24), (1, 24), (2, 28), (3, 32), (4, 32))
    scenes += [_crowd(i, size) for i, size in crowds]
    return scenes


def empty_scenes(quick: bool = False) -> list[Scene]:
    """Face-free real photos, each at 1280 x 960 and (mirrored) at 2400 x 1600."""
    names = FACE_FREE[::3] if quick else FACE_FREE
    scenes = []
    for name in names:
        for size, mirror in ((MEDIUM, False), (LARGE, True)):
            pixels = _background(name, size, mirror)
            scenes.append(Scene(f"{name}-{size[0]}x{size[1]}", pixels))
    return scenes


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``x1, y1, x2, y2`` boxes (0 when either is empty)."""
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: Sequence[Box], found: Sequence[Box], min_iou: float = MIN_IOU) -> list[int | None]:
    """For each true box, the index of the detection matched to it (or None).

    Pairs are taken best IoU first; each detection and each true box is used once.
    """
    pairs = sorted(
        ((iou(t, d), ti, di) for ti, t in enumerate(truth) for di, d in enumerate(found)),
        reverse=True,
    )
    matched: list[int | None] = [None] * len(truth)
    used: set[int] = set()
    for overlap, ti, di in pairs:
        if overlap < min_iou:
            break
        if matched[ti] is None and di not in used:
            matched[ti] = di
            used.add(di)
    return matched


@dataclass
class Score:
    """How one detector did on the set."""

    faces: int = 0
    found: int = 0
    face_free_photos: int = 0
    false_positives_face_free: int = 0
    photos_with_faces: int = 0
    false_positives_with_faces: int = 0
    # key -> [found, faces]
    by_variant: dict[str, list[int]] = field(default_factory=dict)
    by_size: dict[int, list[int]] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else 0.0

    @property
    def fp_per_face_free_photo(self) -> float:
        return self.false_positives_face_free / max(1, self.face_free_photos)

    @property
    def fp_per_photo_with_faces(self) -> float:
        return self.false_positives_with_faces / max(1, self.photos_with_faces)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers: recall, false positives, and recall per variant and per size."""
        return {
            "recall": round(self.recall, 4),
            "faces": self.faces,
            "found": self.found,
            "fp_per_face_free_photo": round(self.fp_per_face_free_photo, 4),
            "face_free_photos": self.face_free_photos,
            "fp_per_photo_with_faces": round(self.fp_per_photo_with_faces, 4),
            "recall_by_variant": {
                k: round(v[0] / v[1], 3) for k, v in sorted(self.by_variant.items())
            },
            "recall_by_size": {
                str(k): round(v[0] / v[1], 3) for k, v in sorted(self.by_size.items())
            },
            "missed": self.missed,
            "false_alarms": self.false_alarms,
        }


def score(
    scenes: Sequence[Scene],
    detect: Callable[[Pixels], list[Box]],
    min_iou: float = MIN_IOU,
) -> Score:
    """Run ``detect`` on every scene and score it (see the module docstring)."""
    return score_found(scenes, [detect(scene.pixels) for scene in scenes], min_iou)


def score_found(
    scenes: Sequence[Scene], detections: Sequence[Sequence[Box]], min_iou: float = MIN_IOU
) -> Score:
    """Score the boxes found in each scene (``detections[i]`` in ``scenes[i]``)."""
    result = Score()
    for scene, found in zip(scenes, detections, strict=True):
        matched = match([f.box for f in scene.faces], found, min_iou)
        false_alarms = len(found) - sum(m is not None for m in matched)
        if scene.faces:
            result.photos_with_faces += 1
            result.false_positives_with_faces += false_alarms
        else:
            result.face_free_photos += 1
            result.false_positives_face_free += false_alarms
        if false_alarms:
            result.false_alarms.append(f"{scene.name} ({false_alarms})")
        for face, hit in zip(scene.faces, matched, strict=True):
            result.faces += 1
            result.found += hit is not None
            for counts in (
                result.by_variant.setdefault(face.variant, [0, 0]),
                result.by_size.setdefault(face.size, [0, 0]),
            ):
                counts[0] += hit is not None
                counts[1] += 1
            if hit is None:
                result.missed.append(f"{scene.name}:{face.source}")
    return result
