"""OpenCV, imported completely by one thread before any other uses it.

Parts import ``cv2`` on first use, to keep cold starts short, and the first
requests of a fresh part arrive on several threads at once. While the first
thread imports it, ``cv2``'s package puts its native extension into
``sys.modules`` and only then attaches its Python submodules (``cv2.data``,
...), so another thread can get ``cv2`` without them: in a burst of uploads
through a cold ``detect_faces``, four runs failed with "module 'cv2' has no
attribute 'data'". Every use of ``cv2`` in a part calls :func:`load_opencv`
first; once loaded, that is one attribute read.

Example:
    >>> load_opencv()
    >>> import cv2
    >>> cv2.data.haarcascades.endswith("/")
    True
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_loaded = False


def load_opencv() -> None:
    """Import ``cv2`` completely, once per process; other threads wait until it is done."""
    global _loaded
    if _loaded:
        return
    with _LOCK:
        if not _loaded:
            import cv2  # noqa: F401

            _loaded = True
