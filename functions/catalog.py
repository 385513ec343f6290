"""The catalogue of parts: which part a function name runs, imported on first use.

Each part lives in its own module under :mod:`functions.parts` and exports a
module-level ``PART``. The catalogue imports a module only when its part is
asked for, and part modules keep OpenCV and ONNX imports inside their run
functions, so the router can validate params without loading either.

Example:
    >>> catalog = default_catalog()
    >>> catalog.get("resize").parse_params({"max_side": 512}).max_side
    512
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from functools import cache
from typing import Any

from functions.errors import StepError
from functions.part import Part

# Function name -> module exporting its PART. The function names are the
# functions-framework targets of functions/main.py.
DEFAULT_MODULES: Mapping[str, str] = {
    "resize": "functions.parts.resize",
    "convert": "functions.parts.convert",
    "detect_faces": "functions.parts.faces",
    "detect_text": "functions.parts.text",
    "read_text": "functions.parts.read_text",
    "detect_objects": "functions.parts.objects",
    "blur": "functions.parts.blur",
    "blur_faces": "functions.parts.blur_faces",
    "annotate": "functions.parts.annotate",
}


class UnknownFunction(StepError, KeyError):
    """No part of the catalogue has this name."""

    code = "unknown_function"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown function {name!r}; known: {', '.join(known)}")
        self.name = name

    def __str__(self) -> str:
        # KeyError would print the message quoted, as if it were a key.
        return self.message


class Catalog:
    """Maps function names to parts, importing each part's module lazily."""

    def __init__(self, modules: Mapping[str, str] = DEFAULT_MODULES) -> None:
        """Make a catalogue; nothing is imported yet.

        Args:
            modules: Function name -> dotted module path exporting ``PART``.
        """
        self._modules = dict(modules)
        self._parts: dict[str, Part] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The function names, in catalogue order."""
        return list(self._modules)

    def __contains__(self, name: object) -> bool:
        return name in self._modules

    def get(self, name: str) -> Part:
        """The part named ``name``.

        Raises:
            UnknownFunction: No part has that name.
            ImportError: The part's module is missing or broken.
        """
        part = self._parts.get(name)
        if part is not None:
            return part
        module_name = self._modules.get(name)
        if module_name is None:
            raise UnknownFunction(name, self.names())
        with self._lock:
            part = getattr(importlib.import_module(module_name), "PART", None)
            if not isinstance(part, Part):
                raise ImportError(f"{module_name} exports no PART", name=module_name)
            if part.name != name:
                raise ImportError(
                    f"{module_name}.PART is named {part.name!r}, not {name!r}", name=module_name
                )
            self._parts[name] = part
        return part

    def describe(self) -> list[dict[str, Any]]:
        """One JSON-ready description per part, for ``GET /v1/functions``.

        Returns:
            Dicts with ``name``, ``group`` (pre-processing | ai |
            post-processing), ``summary``, ``params`` (a JSON Schema),
            ``input`` (always ``image``), ``output`` (``image`` or
            ``detections``), ``labels`` and ``uses_inference``.
        """
        return [describe_part(self.get(name)) for name in self.names()]


def describe_part(part: Part) -> dict[str, Any]:
    """The JSON-ready description of one part (see :meth:`Catalog.describe`)."""
    return {
        "name": part.name,
        "group": part.group.value,
        "summary": part.summary,
        "params": part.schema(),
        "input": "image",
        "output": part.output,
        "labels": list(part.labels),
        "uses_inference": part.uses_inference,
    }


@cache
def default_catalog() -> Catalog:
    """The catalogue of every built-in part (one per process)."""
    return Catalog()
