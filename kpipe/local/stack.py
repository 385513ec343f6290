"""The local stack: which processes ``kpipe up`` runs, on which ports, wired how.

It is the one-machine twin of deploy/knative: the same functions-framework
targets, the same event routing (one trigger per part filtering on
``kpipefunction``, one set for the router) and the same env vars. The
router's process hosts the local broker; the S3 server keeps its objects in
``KPIPE_HOME/s3``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from eventing.contract import EXT_FUNCTION, ROUTER_EVENT_TYPES, EventType
from eventing.signing import Role, part_principal
from kpipe.local.broker.triggers import DeliverySpec, Trigger, write_config
from kpipe.local.config import PARTS, REPO, StackConfig
from kpipe.local.keys import ensure_keys, ensure_webhook_token, trusted_keys_env
from kpipe.local.supervisor import ProcessSpec


def write_triggers(config: StackConfig, path: Path) -> None:
    """Write the local broker's triggers: the same routing rules as deploy/knative."""
    router = config.router_url("/events")
    triggers = [
        Trigger(
            name=f"router-{kind.value.removeprefix('io.kpipe.').replace('.', '-')}",
            subscriber=router,
            attributes={"type": kind.value},
        )
        for kind in ROUTER_EVENT_TYPES
    ]
    triggers += [
        Trigger(
            name=f"part-{name.replace('_', '-')}",
            subscriber=config.url(config.part_port(name), "/"),
            attributes={"type": EventType.STEP_REQUESTED.value, EXT_FUNCTION: name},
            delivery=DeliverySpec(retry=config.part_retry),
            # As many in flight as the part runs at once (KPIPE_PART_CONCURRENCY).
            concurrency=config.part_concurrency,
        )
        for name in PARTS
    ]
    delivery = DeliverySpec(
        retry=config.retry,
        backoff_policy="exponential",
        backoff_delay_s=config.backoff_delay_s,
        dead_letter_sink=config.router_url("/dead-letters"),
    )
    write_config(path, triggers, delivery)


def common_env(config: StackConfig) -> dict[str, str]:
    """The env every component gets, as a ConfigMap and Secret would give it in a cluster."""
    return {
        "KPIPE_HOME": str(config.home.resolve()),
        # Every principal's public key: each receiver checks who signed what it gets.
        "KPIPE_TRUSTED_KEYS": trusted_keys_env(ensure_keys(config.home, PARTS)),
        # Where parts read sources from (the notified buckets) and write into (the rest).
        "KPIPE_SOURCE_BUCKETS": ",".join(config.notify_buckets),
        "KPIPE_OUTPUT_BUCKETS": ",".join(
            b for b in config.buckets if b not in config.notify_buckets
        ),
        # The S3 front: uploads through it are fsynced and notified.
        "MINIO_ENDPOINT": f"{config.internal_host}:{config.s3_port}",
        "MINIO_ACCESS_KEY": config.access_key,
        "MINIO_SECRET_KEY": config.secret_key,
        "TRITON_URL": f"{config.internal_host}:{config.triton_port}",
        "K_SINK": config.broker_url,
        "PYTHONUNBUFFERED": "1",
    }


def process_specs(config: StackConfig) -> list[ProcessSpec]:
    """Every process of the local stack, in start order.

    Each process gets only its own signing key (made in
    ``KPIPE_HOME/keys`` on the first start, see :mod:`kpipe.local.keys`).
    """
    python = sys.executable
    keys = ensure_keys(config.home, PARTS)
    webhook = {"KPIPE_WEBHOOK_TOKEN": ensure_webhook_token(config.home)}
    triggers = config.home.resolve() / "triggers.yaml"
    write_triggers(config, triggers)
    specs = [
        ProcessSpec(
            "s3",
            [
                python,
                "-m",
                "kpipe.local.s3.server",
                "--host",
                config.internal_host,
                "--port",
                str(config.s3_port),
                "--backend-port",
                str(config.s3_backend_port),
                "--data-dir",
                str(config.home.resolve() / "s3"),
                *[a for b in config.buckets for a in ("--bucket", b)],
                *[a for b in config.notify_buckets for a in ("--notify-bucket", b)],
                "--webhook",
                config.url(config.adapter_port, "/"),
            ],
            config.url(config.s3_port, "/minio/health/live"),
            env=webhook,
        ),
        ProcessSpec(
            "triton",
            [
                python,
                "-m",
                "kpipe.local.triton.server",
                "--host",
                config.internal_host,
                "--http-port",
                str(config.triton_port),
                "--grpc-port",
                str(config.triton_grpc_port),
                "--metrics-port",
                str(config.triton_metrics_port),
                "--model-repository",
                str(config.models),
            ],
            # PyTriton's server answers /v2/health/ready before it loads its
            # models (and 400 while it loads them): wait for the one parts need.
            config.url(config.triton_port, "/v2/models/text_detection/ready"),
            ready_timeout_s=180.0,
        ),
        ProcessSpec(
            "adapter",
            [
                python,
                "-m",
                "eventing.adapter",
                "--host",
                config.internal_host,
                "--port",
                str(config.adapter_port),
            ],
            config.url(config.adapter_port, "/healthz"),
            env={**webhook, "KPIPE_SIGNING_KEY": keys[Role.ADAPTER].entry()},
        ),
    ]
    for name in PARTS:
        port = config.part_port(name)
        specs.append(
            ProcessSpec(
                name,
                # The part's functions-framework target served by uvicorn in one
                # process, without importing functions-framework and Flask
                # (`functions-framework --target <part> --asgi` serves the same
                # function under gunicorn; see functions/host.py).
                [
                    python,
                    "-m",
                    "functions",
                    "--target",
                    name,
                    "--host",
                    config.internal_host,
                    "--port",
                    str(port),
                ],
                config.url(port, "/"),
                env={
                    "FUNCTION_SOURCE": str(REPO / "functions/main.py"),
                    "FUNCTION_TARGET": name,
                    # Knative sets K_SERVICE to the service name; logs use it.
                    "K_SERVICE": name.replace("_", "-"),
                    "KPIPE_PART_CONCURRENCY": str(config.part_concurrency),
                    "KPIPE_SIGNING_KEY": keys[part_principal(name)].entry(),
                    # Parts write outputs, which no one is notified of: straight to rclone.
                    "MINIO_ENDPOINT": f"{config.internal_host}:{config.s3_backend_port}",
                    # glibc's mmap threshold grows to the largest block freed, so
                    # later pictures and tensors come from the heap and stay resident;
                    # fixed, each is unmapped when freed (a fused 1080p run: -15 MB).
                    "MALLOC_MMAP_THRESHOLD_": "131072",
                },
            )
        )
    # The router's /healthz checks what the supervisor waits for, so it never
    # says ready while Triton is still loading the model (its own Triton check
    # is the server's /v2/health/ready, which is right only for a Triton that
    # loads its models before it serves).
    health = ",".join(f"{s.name}={s.ready_url}" for s in specs if s.name != "s3")
    health += f",broker={config.url(config.broker_port, '/healthz')}"
    specs.append(
        ProcessSpec(
            "router",
            [python, "-m", "router", "--host", config.host, "--port", str(config.router_port)],
            # Open with or without KPIPE_API_TOKEN.
            config.router_url("/openapi.json"),
            env={
                "KPIPE_HEALTH_URLS": health,
                "KPIPE_SIGNING_KEY": keys[Role.ROUTER].entry(),
                # The router's process runs the local broker (kpipe/local/broker_host.py).
                "KPIPE_BROKER_CONFIG": str(triggers),
                "KPIPE_BROKER_HOST": config.internal_host,
                "KPIPE_BROKER_PORT": str(config.broker_port),
            },
        )
    )
    return specs
