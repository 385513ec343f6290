"""``kpipe deploy`` (render, apply) and ``kpipe models push``.

The kubernetes and minio clients are imported inside the commands, so
``kpipe`` starts without them.

Example:
    $ kpipe deploy render --overlay gpu > kpipe.yaml
    $ kpipe deploy apply --overlay dev --wait 600
    $ kpipe deploy secrets --overlay gpu | kubeseal -o yaml > secrets.yaml
    $ kpipe deploy signing-key part/resize > resize.key
    $ kpipe models push --cpu
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from eventing.signing import Role, part_principal
from functions.catalog import default_catalog
from kpipe.deploy.keys import PrincipalKey
from kpipe.deploy.render import OVERLAYS, Obj, overlay_dir, render, to_yaml
from kpipe.deploy.subjects import with_oidc_subjects
from kpipe.local.config import MODEL_REPOSITORY

_overlay = click.option(
    "--overlay",
    type=click.Choice(["base", *OVERLAYS]),
    default="dev",
    show_default=True,
    help="deploy/knative/overlays/<name> (base: the namespace-less base).",
)
_image = click.option("--image", default=None, help="The kpipe image (repo:tag) to run instead.")


def _manifests(overlay: str, namespace: str | None, image: str | None = None) -> list[Obj]:
    """The overlay's objects, with the OIDC subjects generated for the namespace they are in."""
    return with_oidc_subjects(render(overlay_dir(overlay), namespace, image))


@click.group()
def deploy() -> None:
    """Render and apply the Knative manifests (deploy/knative)."""


@deploy.command("render")
@_overlay
@click.option("--namespace", default=None, help="Override the overlay's namespace.")
@_image
def render_cmd(overlay: str, namespace: str | None, image: str | None) -> None:
    """Print the manifests as multi-document YAML (like `kubectl kustomize`).

    Unlike `kubectl kustomize`, each receiver gets KPIPE_OIDC_SUBJECTS: the
    service accounts of the Triggers that deliver to it, in the namespace
    rendered (none for the base without --namespace).
    """
    click.echo(to_yaml(_manifests(overlay, namespace, image)), nl=False)


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

    Secrets that do not exist yet are created with random values (a fresh
    Ed25519 key in each signing Secret: the router's, the adapter's and one
    per part), and kpipe-trusted-keys, when missing, with their public keys;
    existing ones are never changed.
    """
    from kubernetes import config

    from kpipe.deploy.apply import Applier, ApplyFailed, UntrustedSigningKey, describe
    from kpipe.deploy.keys import BadSigningKey

    if overlay == "base" and namespace is None:
        raise click.UsageError("the base has no namespace: pass --namespace")
    objs = _manifests(overlay, namespace, image)
    # kubernetes' config loader is untyped.
    api = config.new_client_from_config(context=context)  # type: ignore[no-untyped-call]
    with api:
        applier = Applier(api)
        try:
            applied = applier.apply(objs, dry_run=dry_run)
        except (ApplyFailed, UntrustedSigningKey, BadSigningKey) as exc:
            raise click.ClickException(str(exc)) from None
        for done in applied:
            click.echo(
                f"{done.action:<8} {done.name}" + (f"  ({done.detail})" if done.detail else "")
            )
        if dry_run:
            return
        skipped = {d.name for d in applied if d.action == "skipped"}
        report = applier.wait([o for o in objs if describe(o) not in skipped], wait_s)
    for row in report:
        click.echo(f"{'ready' if row.ready else 'waiting':<8} {row.name}  {row.detail}")
    if wait_s and not all(r.ready for r in report):
        sys.exit(1)


@deploy.command("secrets")
@_overlay
@click.option("--namespace", default=None, help="Override the overlay's namespace.")
def secrets_cmd(overlay: str, namespace: str | None) -> None:
    """Print every Secret, and kpipe-trusted-keys, with fresh values, as YAML.

    What `apply` would create on a first install, for tools that apply the
    manifests themselves (kubectl, Argo CD, sealed secrets): create these
    first, once. They hold private keys; do not commit them unencrypted.
    """
    from kpipe.deploy.apply import generate

    objs = _manifests(overlay, namespace)
    created = [o for o in generate(objs, lambda _: None).values() if o is not None]
    click.echo(to_yaml(created), nl=False)


def principals() -> list[str]:
    """Every principal of the cluster: the router, the adapter and each part of the catalogue."""
    parts = [part_principal(function) for function in default_catalog().names()]
    return [Role.ROUTER.value, Role.ADAPTER.value, *parts]


@deploy.command("signing-key")
@click.argument("principal")
def signing_key_cmd(principal: str) -> None:
    """Print a new signing key for PRINCIPAL, and its entry for KPIPE_TRUSTED_KEYS.

    PRINCIPAL is router, adapter or part/<function> (part/resize,
    part/detect_faces: the catalogue's names, with underscores). Two shell
    assignments, KPIPE_SIGNING_KEY (secret) and TRUSTED_ENTRY (public), for
    a rotation (deploy/README.md, "Rotating a signing key").
    """
    known = principals()
    if principal not in known:
        raise click.BadParameter(f"{principal!r} is not one of {', '.join(known)}")
    key = PrincipalKey.generate(principal)
    click.echo(f"KPIPE_SIGNING_KEY={key.env_value()}")
    click.echo(f"TRUSTED_ENTRY={key.trusted_entry()}")


@click.group()
def models() -> None:
    """Manage the models in the cluster's model repository."""


@models.command("push")
@click.option(
    "--model-repository",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=MODEL_REPOSITORY,
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

    from kpipe.core.settings import ObjectStoreSettings
    from kpipe.deploy.models import NoModels, client_from_settings, push_models

    client = client_from_settings(ObjectStoreSettings())
    try:
        pushed = push_models(client, model_repository, bucket, prefix, cpu)
    except (NoModels, S3Error) as exc:
        raise click.ClickException(str(exc)) from None
    for item in pushed:
        click.echo(f"pushed s3://{bucket}/{item.key} ({item.size} bytes)")
