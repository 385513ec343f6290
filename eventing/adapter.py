"""The bucket-notification to CloudEvent adapter (MinIO's webhook target posts here).

Each ``ObjectCreated`` record becomes one ``io.kpipe.object.created`` event,
signed with the adapter's key (the router starts runs only for those), sent
to the broker. Only a request with MinIO's bearer token (``auth_token``) is
read. The adapter answers 200 only after the broker took every event,
so MinIO (with a ``queue_dir``) redelivers the notification otherwise; the event
id is stable per bucket, key, ETag and version, so a redelivery is a duplicate
the router can drop.

Example:
    $ K_SINK=http://127.0.0.1:8081/ KPIPE_WEBHOOK_TOKEN=s3cret \\
        KPIPE_SIGNING_KEY=$(cat .kpipe/keys/adapter.key) python -m eventing.adapter --port 8082
    $ mc admin config set local notify_webhook:kpipe \\
        endpoint=http://127.0.0.1:8082/ auth_token=s3cret queue_dir=/tmp/q
"""

from __future__ import annotations

import logging

import click
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventing.errors import DeliveryFailed, MalformedNotification
from eventing.notifications import parse_notification
from eventing.signing import SigningKey, SigningSettings
from eventing.sink import BrokerClient, HttpBrokerClient
from kpipe.core.auth import BearerRefused, check_bearer
from kpipe.core.errors import KpipeError
from kpipe.core.http_body import BodyTooLarge, read_body
from kpipe.core.http_status import error_body, status_for
from kpipe.core.settings import EventSettings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
SOURCE_PREFIX = "/kpipe/s3/"


def _error(exc: KpipeError) -> JSONResponse:
    headers = {"www-authenticate": exc.challenge} if isinstance(exc, BearerRefused) else None
    return JSONResponse(
        error_body(exc.code, exc.message, getattr(exc, "field", None)),
        status_code=status_for(exc),
        headers=headers,
    )


def create_adapter_app(
    sink: BrokerClient,
    signer: SigningKey,
    auth_token: str | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> Starlette:
    """The adapter's ASGI app.

    Args:
        sink: where the events go (blocking; called in a worker thread).
        signer: the adapter's key: the router starts runs only for events it signed.
        auth_token: the bearer token MinIO sends (``auth_token``); None: no check.
        max_body: the largest notification accepted, in bytes.

    Returns:
        A Starlette app with ``POST /`` and ``GET /healthz``.
    """

    async def notify(request: Request) -> Response:
        try:
            if auth_token is not None:
                check_bearer(request.headers.get("authorization"), auth_token)
            created = parse_notification(await read_body(request, max_body))
            for obj in created:
                event = signer.sign(obj.to_event(source=SOURCE_PREFIX + obj.bucket))
                await run_in_threadpool(sink.send, event)
        except (BearerRefused, MalformedNotification, BodyTooLarge, DeliveryFailed) as exc:
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
    from kpipe.core.logs import configure_logging

    configure_logging("adapter")
    signer = SigningSettings().key()
    if signer is None:
        raise click.ClickException(
            "KPIPE_SIGNING_KEY is not set: the router would refuse every event"
        )
    if not token:
        # Without it anyone who can reach the adapter could have it sign an
        # object.created, the one event that starts runs.
        raise click.ClickException(
            "KPIPE_WEBHOOK_TOKEN is not set: set it here and as MinIO's webhook auth_token"
        )
    # model_validate: mypy does not see pydantic-settings defaults without its plugin.
    settings = EventSettings.model_validate({"K_SINK": sink} if sink else {})
    with HttpBrokerClient.from_settings(settings) as client:
        app = create_adapter_app(client, signer, token)
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
