"""The functions-framework targets: one ASGI HTTP function per part of the catalogue.

Run one with::

    functions-framework --source functions/main.py --target resize --asgi --port 8081

or, without loading functions-framework and Flask, as ``kpipe up`` does::

    python -m functions --target resize --port 8081

Each target answers a broker's ``io.kpipe.step.requested`` delivery with an
``io.kpipe.step.completed`` or ``io.kpipe.step.failed`` CloudEvent (binary
mode) and a GET with a health document. There is one target per part of
:func:`functions.catalog.default_catalog`, named like it: a part is declared
once, in its module under ``functions/parts``. Configuration comes only from
env vars (see :class:`functions.runtime.ProcessRuntime`), read on the first
request; the object store and Triton clients are then reused.
"""

from __future__ import annotations

import os
import sys

from functions._asgi import Target, target
from functions.catalog import default_catalog
from functions.runtime import ProcessRuntime
from kpipe.core.logs import configure_logging

# Knative sets K_SERVICE to the service's name (kpipe up does the same).
configure_logging(os.environ.get("K_SERVICE", "functions"))

# One per loaded module, i.e. per process (functions-framework loads this
# file once); built lazily so a cold start does no I/O before the first event.
_RUNTIME = ProcessRuntime()


def _registered(function: Target) -> Target:
    """``function``, registered as an ASGI HTTP function when functions-framework loads us.

    ``@functions_framework.aio.http`` tells functions-framework's Flask
    front to hand the target to its ASGI app (``functions-framework
    --target <part>`` without ``--asgi``). Importing functions-framework
    imports Flask, so it is done only when functions-framework is the one
    loading this file; ``python -m functions`` serves the same functions
    without it.
    """
    if "functions_framework" not in sys.modules:
        return function
    import functions_framework.aio

    functions_framework.aio.http(function)  # registers it by its name
    return function


for _name in default_catalog().names():
    globals()[_name] = _registered(target(_name, _RUNTIME))
