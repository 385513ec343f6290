"""The functions-framework targets: one ASGI HTTP function per part of the catalogue.

Run one with::

    functions-framework --source functions/main.py --target resize --asgi --port 8081

or, in one process, as ``kpipe up`` does::

    FUNCTION_SOURCE=functions/main.py FUNCTION_TARGET=resize \\
        uvicorn functions_framework.aio:app --port 8081

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

import functions_framework.aio

from functions._asgi import target
from functions.catalog import default_catalog
from functions.runtime import ProcessRuntime
from kpipe.core.logs import configure_logging

# Knative sets K_SERVICE to the service's name (kpipe up does the same).
configure_logging(os.environ.get("K_SERVICE", "functions"))

# One per loaded module, i.e. per process (functions-framework loads this
# file once); built lazily so a cold start does no I/O before the first event.
_RUNTIME = ProcessRuntime()

for _name in default_catalog().names():
    globals()[_name] = functions_framework.aio.http(target(_name, _RUNTIME))
