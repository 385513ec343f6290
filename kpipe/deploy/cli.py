"""``kpipe deploy`` (render, apply) and ``kpipe models push``.

The kubernetes and minio clients are imported inside the commands, so
``kpipe`` starts without them.

Example:
    $ kpipe deploy render --overlay gpu > kpipe.yaml
    $ kpipe deploy apply --overlay dev --wait 600
    $ kpipe models push --cpu
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kpipe.deploy.render import OVERLAYS, overlay_dir, render, to_yaml

_overlay = click.option(
    "--overlay",
    type=click.Choice(["base", *OVERLAYS]),
    default="dev",
    show_default=True,
    help="deploy/knative/overlays/<name> (base: the namespace-less base).",
)
_image = click.option("--image", default=None, help="The kpipe image (repo:tag) to run instead.")


@click.group()
def deploy() -> None:
    """Render and apply the Knative manifests (deploy/knative)."""


@deploy.command("render")
@_overlay
@click.option("--namespace", default=None, help="Override the overlay's namespace.")
@_image
def render_cmd(overlay: str, namespace: str | None, image: str | None) -> None:
    """Print the manifests as multi-document YAML (like `kubectl kustomize`)."""
    click.echo(to_yaml(render(overlay_dir(overlay), namespace, image)), nl=False)


@deploy.command("apply")
@_overlay
@click.option("--namespace", default=None, help="Override the overlay's namespace.")
@_image
@click.option("--context", default=None, help="kubeconfig context (default: the current one).")
@click.option("--dry-run", is_flag=True, help="Server-side dry run: validate, persist nothing.")
@click.option(
    "--wait", "wait_s", default=0.0, show_default=True, help="Seconds to wait for readiness."
)
def apply_cmd(
    overlay: str,
    namespace: str | None,
    image: str | None,
    context: str | None,
    dry_run: bool,
    wait_s: float,
) -> None:
    """Server-side apply the manifests, then report what is ready.

    Secrets that do not exist yet are created with random values; existing
    ones are never changed.
    """
    from kubernetes import config

    from kpipe.deploy.apply import Applier, ApplyFailed

    if overlay == "base" and namespace is None:
        raise click.UsageError("the base has no namespace: pass --namespace")
    objs = render(overlay_dir(overlay), namespace, image)
    # kubernetes' config loader is untyped.
    api = config.new_client_from_config(context=context)  # type: ignore[no-untyped-call]
    with api:
        applier = Applier(api)
        try:
            for done in applier.apply(objs, dry_run=dry_run):
                click.echo(f"{done.action:<8} {done.name}")
        except ApplyFailed as exc:
            raise click.ClickException(str(exc)) from None
        if dry_run:
            return
        report = applier.wait(objs, wait_s)
    for row in report:
        click.echo(f"{'ready' if row.ready else 'waiting':<8} {row.name}  {row.detail}")
    if wait_s and not all(r.ready for r in report):
        sys.exit(1)


@click.group()
def models() -> None:
    """Manage the models in the cluster's model repository."""


@models.command("push")
@click.option(
    "--model-repository",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("triton/models"),
    envvar="KPIPE_TRITON_MODELS",
    show_default=True,
)
@click.option("--bucket", default="models", show_default=True)
@click.option("--prefix", default="", help="Key prefix inside the bucket.")
@click.option("--cpu", is_flag=True, help="Upload KIND_GPU instance groups as KIND_CPU.")
def push_cmd(model_repository: Path, bucket: str, prefix: str, cpu: bool) -> None:
    """Upload the Triton model repository to the S3 bucket Triton reads.

    The store is MINIO_ENDPOINT, MINIO_ACCESS_KEY, MINIO_SECRET_KEY (and
    MINIO_SECURE), as for every kpipe component.
    """
    from minio.error import S3Error

    from kpipe.deploy.models import NoModels, client_from_settings, push_models
    from kpipe.settings import ObjectStoreSettings

    client = client_from_settings(ObjectStoreSettings())
    try:
        pushed = push_models(client, model_repository, bucket, prefix, cpu)
    except (NoModels, S3Error) as exc:
        raise click.ClickException(str(exc)) from None
    for item in pushed:
        click.echo(f"pushed s3://{bucket}/{item.key} ({item.size} bytes)")
