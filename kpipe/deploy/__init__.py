"""Deploying kpipe to Knative: render the kustomize tree, apply it, push the models."""

from __future__ import annotations

from kpipe.deploy.render import KNATIVE_DIR, UnsupportedKustomization, render

__all__ = ["KNATIVE_DIR", "UnsupportedKustomization", "render"]
