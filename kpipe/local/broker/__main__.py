"""Run the local broker: ``python -m kpipe.local.broker --port N --config triggers.yaml``.

Example:
    $ KPIPE_BROKER_PORT=8081 KPIPE_BROKER_CONFIG=.kpipe/triggers.yaml \\
        KPIPE_BROKER_QUEUE=.kpipe/broker.db python -m kpipe.local.broker
    $ curl -i http://127.0.0.1:8081/default/default -H 'ce-specversion: 1.0' \\
        -H 'ce-type: t' -H 'ce-source: /me' -H 'ce-id: 1'    # -> 202 Accepted
"""

from __future__ import annotations

from pathlib import Path

import click
import uvicorn

from kpipe.local.broker.app import create_broker_app
from kpipe.local.broker.triggers import BrokerConfig, load_config


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="KPIPE_BROKER_HOST")
@click.option("--port", type=int, required=True, envvar="KPIPE_BROKER_PORT")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    envvar="KPIPE_BROKER_CONFIG",
    help="Triggers file (YAML or JSON); none: a broker with no triggers.",
)
@click.option(
    "--queue",
    "queue_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="KPIPE_BROKER_QUEUE",
    help="The durable queue (an SQLite file); none: in memory, lost on exit.",
)
@click.option("--concurrency", type=int, default=32, show_default=True, help="Per trigger.")
def main(
    host: str, port: int, config_path: Path | None, queue_path: Path | None, concurrency: int
) -> None:
    """Serve the local Knative-compatible broker."""
    from kpipe.core.logs import configure_logging

    configure_logging("broker")
    config = load_config(config_path) if config_path else BrokerConfig()
    app = create_broker_app(config, concurrency=concurrency, queue_path=queue_path or ":memory:")
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
