"""The local broker, hosted in the router's process (``kpipe up``).

In a cluster the router is one subscriber of a Knative Broker. On one
machine the router's process runs the broker too: its ingress listens on
its own port (``K_SINK`` of the adapter and the parts' tools), its queue is
an SQLite file in ``KPIPE_HOME``, and the triggers that name the router's
own ``/events`` and ``/dead-letters`` are delivered by a function call on
the same event loop instead of an HTTP round trip through a second process.
Parts are still reached over HTTP, with binary CloudEvents, exactly as the
Knative broker reaches them.

Example:
    >>> app = create_app(services)  # doctest: +SKIP
    >>> url = "http://127.0.0.1:8080"  # the router's own, as the triggers name it
    >>> host_local_broker(app, services, LocalBrokerSettings(), url)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Generator

import uvicorn
from cloudevents.http import CloudEvent
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from eventing.http import from_cloudevent, to_cloudevent
from kpipe.core.errors import KpipeError
from kpipe.core.http_status import status_for
from kpipe.local.broker.app import create_ingress_app
from kpipe.local.broker.core import Broker
from kpipe.local.broker.delivery import LocalSubscriber, Outcome
from kpipe.local.broker.local import InProcessClient
from kpipe.local.broker.triggers import load_config
from kpipe.local.config import LocalBrokerSettings
from router.events_api import handle_dead_letter, route_event
from router.services import RouterServices

log = logging.getLogger(__name__)


def _failure(exc: Exception) -> Outcome:
    """What an HTTP subscriber would have answered for ``exc``."""
    if isinstance(exc, KpipeError):
        status = status_for(exc)
        return Outcome(False, status, exc.message.encode(), error=f"{exc.code}: {exc.message}")
    log.exception("routing an event failed")
    return Outcome(False, 500, error=f"{type(exc).__name__}: {exc}")


def subscribers(services: RouterServices, base_url: str) -> dict[str, LocalSubscriber]:
    """The router's endpoints as in-process subscribers, by the URIs triggers name them."""

    async def events(ce: CloudEvent) -> Outcome:
        try:
            event = from_cloudevent(ce)
            reply = await run_in_threadpool(route_event, services, event)
        except Exception as exc:  # each maps to the status the HTTP endpoint would give
            return _failure(exc)
        if reply is None:
            return Outcome(True, 202)
        return Outcome(True, 200, reply=to_cloudevent(reply))

    async def dead_letters(ce: CloudEvent) -> Outcome:
        try:
            await run_in_threadpool(handle_dead_letter, services, ce)
        except Exception as exc:
            return _failure(exc)
        return Outcome(True, 202)

    base = base_url.rstrip("/")
    return {f"{base}/events": events, f"{base}/dead-letters": dead_letters}


class _IngressServer(uvicorn.Server):
    """The broker's ingress server: it leaves signals to the router's own server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def hosted_broker(
    services: RouterServices, settings: LocalBrokerSettings, base_url: str
) -> AsyncIterator[Broker]:
    """Run the broker and its ingress server while the router runs.

    Raises:
        InvalidBrokerConfig: the triggers file is not valid.
        OSError: the ingress port is taken.
    """
    if settings.config is None:
        raise ValueError("KPIPE_BROKER_CONFIG is not set")
    broker = Broker(
        load_config(settings.config),
        queue_path=settings.queue_path,
        synchronous="FULL" if settings.synchronous == "FULL" else "NORMAL",
        local=subscribers(services, base_url),
    )
    if services.sink is not None:
        services.sink.close()  # an HTTP client to K_SINK: the broker is here now
    services.sink = InProcessClient(broker, asyncio.get_running_loop())
    await broker.start()
    services.relay.wake()  # what the outbox held when the router stopped: post it now
    config = uvicorn.Config(
        create_ingress_app(broker),
        host=settings.host,
        port=settings.port,
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = _IngressServer(config)
    serving = asyncio.create_task(server.serve(), name="broker-ingress")
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises why it stopped (a port in use)
                raise OSError(f"the broker ingress on {settings.port} did not start")
            await asyncio.sleep(0.01)
        log.info("broker on %s:%d, queue %s", settings.host, settings.port, settings.queue_path)
        yield broker
    finally:
        server.should_exit = True
        try:
            await serving
        finally:
            await broker.stop()  # its queue and connections, however the ingress ended


def host_local_broker(
    app: FastAPI, services: RouterServices, settings: LocalBrokerSettings, base_url: str
) -> None:
    """Make ``app`` run the local broker inside its lifespan (after its own start-up).

    Args:
        app: the router's app (from :func:`router.api.create_app`).
        services: its services; their ``sink`` becomes the in-process client.
        settings: where the broker listens and keeps its queue.
        base_url: the router's own URL, as the triggers file names it.
    """
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        async with inner(application), hosted_broker(services, settings, base_url):
            yield

    app.router.lifespan_context = lifespan
