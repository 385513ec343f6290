"""The bucket-notification to CloudEvent adapter (MinIO's webhook target posts here).

Each ``ObjectCreated`` record becomes one ``io.kpipe.object.created`` event sent
to the broker. The adapter answers 200 only after the broker took every event,
so MinIO (with a ``queue_dir``) redelivers the notification otherwise; the event
id is stable per bucket, key, ETag and version, so a redelivery is a duplicate
the router can drop.

Example:
    $ K_SINK=http://127.0.0.1:8081/ KPIPE_WEBHOOK_TOKEN=s3cret \\
        python -m eventing.adapter --port 8082
    $ mc admin config set local notify_webhook:kpipe \\
        endpoint=http://127.0.0.1:8082/ auth_token=s3cret queue_dir=/tmp/q
"""

from __future__ import annotations

import hmac
import logging

import click
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventing._body import BodyTooLarge, read_body
from eventing.errors import DeliveryFailed, EventingError, MalformedNotification
from eventing.notifications import parse_notification
from eventing.sink import BrokerClient, HttpBrokerClient
from kpipe.settings import EventSettings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
SOURCE_PREFIX = "/kpipe/s3/"

# The one table from error to HTTP status.
_STATUS: dict[type[EventingError], int] = {
    MalformedNotification: 400,
    BodyTooLarge: 413,
    DeliveryFailed: 503,
}


def _error(exc: EventingError) -> JSONResponse:
    status = next(s for kind, s in _STATUS.items() if isinstance(exc, kind))
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=status)


def _authorized(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    # compare_digest: the time taken must not tell how much of the token matched.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


def create_adapter_app(
    sink: BrokerClient, auth_token: str | None = None, max_body: int = MAX_BODY_BYTES
) -> Starlette:
    """The adapter's ASGI app.

    Args:
        sink: where the events go (blocking; called in a worker thread).
        auth_token: the bearer token MinIO sends (``auth_token``); None: no check.
        max_body: the largest notification accepted, in bytes.

    Returns:
        A Starlette app with ``POST /`` and ``GET /healthz``.
    """

    async def notify(request: Request) -> Response:
        if not _authorized(request, auth_token):
            return JSONResponse(
                {"error": "unauthorized", "message": "missing or wrong bearer token"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        try:
            created = parse_notification(await read_body(request, max_body))
            for obj in created:
                event = obj.to_event(source=SOURCE_PREFIX + obj.bucket)
                await run_in_threadpool(sink.send, event)
        except (MalformedNotification, BodyTooLarge, DeliveryFailed) as exc:
            log.warning("notification not handled: %s", exc.message)
            return _error(exc)
        log.info("notification: %d object(s) created sent to the broker", len(created))
        return JSONResponse({"events": len(created)})

    async def healthz(request: Request) -> Response:
        return Response(status_code=200)

    return Starlette(
        routes=[
            Route("/", notify, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="KPIPE_ADAPTER_HOST")
# Knative injects PORT; kpipe up passes --port.
@click.option("--port", type=int, default=8080, envvar=["KPIPE_ADAPTER_PORT", "PORT"])
@click.option("--token", default=None, envvar="KPIPE_WEBHOOK_TOKEN", help="Bearer token.")
@click.option("--sink", default=None, envvar="K_SINK", help="Broker URL.")
def main(host: str, port: int, token: str | None, sink: str | None) -> None:
    """Serve the MinIO webhook to CloudEvent adapter."""
    from kpipe.logs import configure_logging

    configure_logging("adapter")
    # model_validate: mypy does not see pydantic-settings defaults without its plugin.
    settings = EventSettings.model_validate({"K_SINK": sink} if sink else {})
    with HttpBrokerClient.from_settings(settings) as client:
        app = create_adapter_app(client, token or None)
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
