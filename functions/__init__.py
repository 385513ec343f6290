"""kpipe's parts and the step SDK that runs them (see functions/main.py for the targets).

Only the light names are exported here, so that importing the catalogue (as
the router does) loads neither the object-store client nor the image stack;
import the SDK from :mod:`functions.step`.
"""

from __future__ import annotations

from functions.catalog import Catalog, UnknownFunction, default_catalog
from functions.part import Group, Params, Part, PartResult, Picture, StepContext

__all__ = [
    "Catalog",
    "Group",
    "Params",
    "Part",
    "PartResult",
    "Picture",
    "StepContext",
    "UnknownFunction",
    "default_catalog",
]
