"""The ``kpipe`` command: run the local stack and use the REST API.

Example:
    $ kpipe up                       # the whole stack on loopback
    $ kpipe apply -f examples/privacy-blur.yaml
    $ kpipe run privacy-blur photo.jpg
    $ kpipe runs --pipeline privacy-blur
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from kpipe.client import ApiClient, ApiError
from kpipe.deploy.cli import deploy, models
from kpipe.local.config import StackConfig
from kpipe.local.triton.weights import install_weights_command

F = TypeVar("F", bound=Callable[..., Any])

API_URL = "http://127.0.0.1:8080"
_api_url = click.option(
    "--api", default=API_URL, envvar="KPIPE_API_URL", show_default=True, help="The kpipe REST API."
)
_token = click.option(
    "--token",
    default=None,
    envvar="KPIPE_API_TOKEN",
    help="Bearer token (KPIPE_API_TOKEN); every call needs it when the server sets one.",
)


@click.group()
@click.version_option(package_name="kpipe")
def main() -> None:
    """Serverless image-processing pipelines on Knative, and on one machine."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Each polled request is not news to a user; warnings and errors still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _say_who_can_get_in(config: StackConfig) -> None:
    """Tell the user, on start, whether the API needs a token; never open it beyond loopback.

    Raises:
        click.ClickException: KPIPE_HOST is not a loopback address and no token is set.
    """
    from router.settings import RouterSettings

    if RouterSettings().api_token:
        click.echo(
            "kpipe: the API needs 'Authorization: Bearer $KPIPE_API_TOKEN' (⚙ Settings). "
            f"The router listens on {config.host}; the object store, Triton, the broker and "
            f"the parts on {config.internal_host} only."
        )
        return
    if not _is_loopback(config.host):
        raise click.ClickException(
            f"refusing to listen on {config.host} without KPIPE_API_TOKEN: anyone who can reach "
            "it could read every image and change every pipeline. Set KPIPE_API_TOKEN, or "
            "listen on 127.0.0.1."
        )
    click.echo(
        f"kpipe: KPIPE_API_TOKEN is not set, so reads and writes are open to anyone who can "
        f"reach {config.router_url()}: every user and program on this machine can read every "
        f"image, run and pipeline, and change them. Listening on {config.host} only. Set "
        "KPIPE_API_TOKEN to require 'Authorization: Bearer <token>'."
    )


def _stack_option(name: str, help: str | None = None) -> Callable[[F], F]:
    """A ``kpipe up`` option for the StackConfig field ``name``: its default and env var."""
    field = StackConfig.model_fields[name]
    kind: Any = click.Path(path_type=Path) if field.annotation is Path else field.annotation
    return click.option(
        f"--{name.replace('_', '-')}",
        name,
        type=kind,
        default=field.default,
        envvar=field.validation_alias,
        show_default=True,
        show_envvar=True,
        help=help,
    )


# Every StackConfig field that has an env var is a flag of `kpipe up`, in this order, but
# the object store's keys (a command line is visible to every user of the machine).
_UP_OPTIONS = {
    "home": "State dir: database, logs, keys, objects.",
    "host": "Where the router (the API and the web page) listens.",
    "router_port": None,
    "s3_port": None,
    "s3_backend_port": "rclone's own S3 port, which the parts use.",
    "triton_port": None,
    "triton_grpc_port": None,
    "triton_metrics_port": None,
    "broker_port": None,
    "adapter_port": None,
    "parts_port": "Parts listen on the ports after this one.",
    "models": "The Triton model repository.",
}


def _up_options(command: F) -> F:
    for name, help in reversed(_UP_OPTIONS.items()):
        command = _stack_option(name, help)(command)
    return command


@main.command()
@_up_options
def up(**options: Any) -> None:
    """Run the whole local stack until Ctrl-C."""
    from kpipe.local.stack import common_env, process_specs
    from kpipe.local.supervisor import ComponentFailed, Supervisor

    fields = StackConfig.model_fields
    config = StackConfig.model_validate(
        {fields[name].validation_alias: value for name, value in options.items()}
    )
    _say_who_can_get_in(config)
    config.home.mkdir(parents=True, exist_ok=True)
    specs = process_specs(config)

    supervisor = Supervisor(specs, config.home / "logs", {**os.environ, **common_env(config)})
    stop = threading.Event()
    # Handle Ctrl-C ourselves: a shell that starts `kpipe up` in the background
    # leaves SIGINT ignored, and then Python would never raise KeyboardInterrupt.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    started = time.monotonic()
    click.echo(f"kpipe: starting {len(specs)} processes (logs in {config.home / 'logs'})")
    try:
        with supervisor.running():
            ready = supervisor.wait_ready(
                lambda name: click.echo(f"  ready  {name:<15} {time.monotonic() - started:5.1f} s"),
                stop,
            )
            if ready:
                click.echo(
                    f"kpipe is up: API and web page {config.router_url()}  "
                    f"S3 {config.url(config.s3_port)} (minioadmin/minioadmin)  "
                    f"Triton {config.url(config.triton_port)}\nPress Ctrl-C to stop."
                )
                supervisor.watch(stop)
            click.echo("\nkpipe: stopping")
    except ComponentFailed as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("kpipe: stopped")


@main.command()
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="A pipeline spec, YAML or JSON.",
)
@_api_url
@_token
def apply(path: Path, api: str, token: str | None) -> None:
    """Register a pipeline spec (each apply makes a new version)."""
    from router.spec import load_document

    document = path.read_text(encoding="utf-8")
    data: Any = load_document(document)
    name = data.get("name") if isinstance(data, dict) else None
    if not name:
        raise click.ClickException(f"{path}: the spec has no name")
    with ApiClient(api, token) as client:
        try:
            result = client.put_pipeline(name, document)
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"pipeline {result['name']} version {result['version']} applied")


@main.command()
@click.option("--pipeline", default=None)
@click.option("--status", type=click.Choice(["pending", "running", "succeeded", "failed"]))
@click.option("--source", default=None, help="bucket/key of the source object")
@click.option("--limit", default=20, show_default=True)
@_api_url
@_token
def runs(
    pipeline: str | None,
    status: str | None,
    source: str | None,
    limit: int,
    api: str,
    token: str | None,
) -> None:
    """List recent runs."""
    with ApiClient(api, token) as client:
        try:
            found = client.list_runs(pipeline=pipeline, status=status, source=source, limit=limit)
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"{'RUN':<26}{'PIPELINE':<20}{'VER':>4}  {'STATUS':<10}{'MS':>8}  SOURCE")
    for run in found["runs"]:
        duration = f"{run['duration_ms']:.0f}" if run["duration_ms"] is not None else "-"
        source_ref = f"{run['source']['bucket']}/{run['source']['key']}"
        click.echo(
            f"{run['id']:<26}{run['pipeline']:<20}{run['version']:>4}  "
            f"{run['status']:<10}{duration:>8}  {source_ref}"
        )
    click.echo(f"({len(found['runs'])} of {found['total']})")


@main.command()
@click.argument("pipeline")
@click.option("--bucket", default=None, help="Default: the pipeline's trigger bucket.")
@click.option("--prefix", default=None, help="Default: the pipeline's trigger prefix.")
@click.option("--concurrency", default=4, show_default=True, help="Runs in flight at once.")
@_api_url
@_token
def backfill(
    pipeline: str,
    bucket: str | None,
    prefix: str | None,
    concurrency: int,
    api: str,
    token: str | None,
) -> None:
    """Run a pipeline over every object already in a bucket/prefix, with progress."""
    with ApiClient(api, token) as client:
        try:
            job = client.start_backfill(pipeline, bucket, prefix, concurrency)
            with click.progressbar(
                length=job["total"], label=f"backfill {pipeline}", file=sys.stderr
            ) as bar:
                done = 0
                while job["status"] == "running":
                    time.sleep(0.5)
                    job = client.get_backfill(job["id"])
                    finished = job["succeeded"] + job["failed"]
                    bar.update(finished - done)
                    done = finished
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(
        f"{job['total']} objects: {job['succeeded']} succeeded, {job['failed']} failed"
        + (f" ({job['error']})" if job["error"] else "")
    )
    if job["failed"] or job["status"] != "done":
        sys.exit(1)


@main.command(name="run")
@click.argument("pipeline")
@click.argument(
    "images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait per image.")
@_api_url
@_token
def run_cmd(
    pipeline: str, images: tuple[Path, ...], timeout: float, api: str, token: str | None
) -> None:
    """Upload local images to a pipeline's trigger bucket, wait, print the outputs."""
    from kpipe.uploads import upload

    failed = 0
    with ApiClient(api, token) as client:
        try:
            trigger = client.get_pipeline(pipeline)["spec"]["trigger"]
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        with click.progressbar(images, label=f"running {pipeline}", file=sys.stderr) as bar:
            results = []
            for image in bar:
                key = f"{trigger['prefix']}{image.name}"
                if not key.endswith(trigger["suffix"]):
                    suffix = trigger["suffix"]
                    raise click.ClickException(
                        f"{image.name}: the pipeline only takes keys ending in {suffix!r}"
                    )
                etag = upload(image, trigger["bucket"], key)
                results.append(client.wait_for_run(pipeline, trigger["bucket"], key, etag, timeout))
    for result in results:
        source = f"{result['source']['bucket']}/{result['source']['key']}"
        if result["status"] == "succeeded":
            outputs = ", ".join(f"{o['bucket']}/{o['key']}" for o in result["outputs"])
            click.echo(
                f"{source} -> {outputs}  ({result['duration_ms']:.0f} ms, run {result['id']})"
            )
        else:
            failed += 1
            error = result["error"] or {}
            click.echo(
                f"{source} FAILED: {error.get('code')}: {error.get('message')} (run {result['id']})"
            )
    if failed:
        sys.exit(1)


main.add_command(deploy)
# `kpipe models push` (to the cluster's model bucket) and `install-weights` (local repository).
models.add_command(install_weights_command)
main.add_command(models)


if __name__ == "__main__":
    main()
