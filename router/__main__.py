"""Run the router and REST API: ``python -m router --port 8080``.

With ``KPIPE_BROKER_CONFIG`` set (``kpipe up`` sets it) the process also
runs the local broker, on ``KPIPE_BROKER_PORT``.
"""

from __future__ import annotations

import click
import uvicorn


@click.command()
# KPIPE_HOST, as `kpipe up` names where the router listens (kpipe/local/config.py).
@click.option("--host", default="127.0.0.1", envvar="KPIPE_HOST", show_default=True)
# Knative injects PORT; kpipe up sets KPIPE_ROUTER_PORT.
@click.option(
    "--port", default=8080, type=int, envvar=["KPIPE_ROUTER_PORT", "PORT"], show_default=True
)
@click.option("--log-level", default="info", envvar="KPIPE_LOG_LEVEL", show_default=True)
def main(host: str, port: int, log_level: str) -> None:
    """Serve the router (broker deliveries on /events) and the REST API."""
    from kpipe.core.logs import configure_logging
    from kpipe.core.settings import connect_url
    from kpipe.local.broker_host import host_local_broker
    from kpipe.local.config import LocalBrokerSettings
    from router.api import create_app
    from router.services import services_from_env

    configure_logging("router", log_level)
    services = services_from_env()
    app = create_app(services)
    broker = LocalBrokerSettings()
    if broker.config is not None:
        # kpipe up: this process runs the local broker too (kpipe/local/broker_host.py).
        host_local_broker(app, services, broker, connect_url(host, port))
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
