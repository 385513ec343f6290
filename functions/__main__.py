"""``python -m functions --target <part>``: serve one part with uvicorn, without Flask.

Only wires :func:`functions.host.asgi_app` to uvicorn; flags fall back to the
env vars functions-framework reads (``FUNCTION_TARGET``, ``HOST``, ``PORT``).
``functions-framework --source functions/main.py --target <part> --asgi``
serves the same function, after importing Flask.

Example:
    $ python -m functions --target resize --port 8081
"""

from __future__ import annotations

import click
import uvicorn

from functions.host import asgi_app


@click.command()
@click.option("--target", envvar="FUNCTION_TARGET", required=True, help="The part to serve.")
@click.option("--host", envvar="HOST", default="0.0.0.0", show_default=True)
@click.option("--port", envvar="PORT", type=int, default=8080, show_default=True)
@click.option("--log-level", default="warning", show_default=True, help="uvicorn's own log level.")
def main(target: str, host: str, port: int, log_level: str) -> None:
    """Serve the functions-framework target ``target`` of functions/main.py over HTTP."""
    app = asgi_app(target)
    # No lifespan: the part builds its clients on first use. No access log: the
    # part logs each step itself.
    uvicorn.run(app, host=host, port=port, lifespan="off", access_log=False, log_level=log_level)


if __name__ == "__main__":
    main()
