"""The functions-framework targets: one HTTP function per part.

Run one with::

    functions-framework --source functions/main.py --target resize --port 8081

Each target answers a broker's ``io.kpipe.step.requested`` delivery with an
``io.kpipe.step.completed`` or ``io.kpipe.step.failed`` CloudEvent (binary
mode) and a GET with a health document. Configuration comes only from env
vars (see :class:`functions.runtime.ProcessRuntime`), read on the first
request; the object store and Triton clients are then reused.
"""

from __future__ import annotations

import os

import flask
import functions_framework

from functions._flask import serve
from functions.runtime import ProcessRuntime
from kpipe.logs import configure_logging

# Knative sets K_SERVICE to the service's name (kpipe up does the same).
configure_logging(os.environ.get("K_SERVICE", "functions"))

# One per loaded module, i.e. per process (functions-framework loads this
# file once); built lazily so a cold start does no I/O before the first event.
_RUNTIME = ProcessRuntime()


@functions_framework.http
def resize(request: flask.Request) -> flask.Response:
    return serve(request, "resize", _RUNTIME)


@functions_framework.http
def convert(request: flask.Request) -> flask.Response:
    return serve(request, "convert", _RUNTIME)


@functions_framework.http
def detect_faces(request: flask.Request) -> flask.Response:
    return serve(request, "detect_faces", _RUNTIME)


@functions_framework.http
def detect_text(request: flask.Request) -> flask.Response:
    return serve(request, "detect_text", _RUNTIME)


@functions_framework.http
def detect_objects(request: flask.Request) -> flask.Response:
    return serve(request, "detect_objects", _RUNTIME)


@functions_framework.http
def blur(request: flask.Request) -> flask.Response:
    return serve(request, "blur", _RUNTIME)


@functions_framework.http
def blur_faces(request: flask.Request) -> flask.Response:
    return serve(request, "blur_faces", _RUNTIME)


@functions_framework.http
def annotate(request: flask.Request) -> flask.Response:
    return serve(request, "annotate", _RUNTIME)
