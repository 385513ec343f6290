"""Errors raised by the router; :mod:`kpipe.core.http_status` maps their codes to HTTP statuses."""

from __future__ import annotations

from dataclasses import dataclass

from kpipe.core.errors import KpipeError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pipeline spec, at a JSON path such as ``steps[1].after[0]``."""

    path: str
    message: str

    def to_data(self) -> dict[str, str]:
        return {"field": self.path, "message": self.message}


class RouterError(KpipeError):
    """Root of the router package's errors."""

    code = "router_error"


class SpecInvalid(RouterError, ValueError):
    """A pipeline spec breaks one or more rules; every problem is listed."""

    code = "invalid_spec"

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first.path}: {first.message}{more}")
        self.problems = problems


class PipelineNotFound(RouterError, LookupError):
    """No pipeline (or no such version of it) is registered."""

    code = "pipeline_not_found"

    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"pipeline {name!r}" + (f" version {version}" if version is not None else "")
        super().__init__(f"{what} is not registered")
        self.name = name
        self.version = version


class RunNotFound(RouterError, LookupError):
    """No run has that id."""

    code = "run_not_found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} does not exist")
        self.run_id = run_id


class RolloutNotFound(RouterError, LookupError):
    """The pipeline has never had a rollout."""

    code = "rollout_not_found"

    def __init__(self, pipeline: str) -> None:
        super().__init__(f"pipeline {pipeline!r} has no rollout")
        self.pipeline = pipeline


class BackfillNotFound(RouterError, LookupError):
    """No backfill has that id."""

    code = "backfill_not_found"

    def __init__(self, backfill_id: str) -> None:
        super().__init__(f"backfill {backfill_id!r} does not exist")
        self.backfill_id = backfill_id


class BadQuery(RouterError, ValueError):
    """A query parameter has a value the API cannot use."""

    code = "bad_query"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RequestInvalid(RouterError, ValueError):
    """A request's parameters or JSON body do not fit the operation's schema."""

    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(RouterError):
    """The request does not fit the current state (e.g. retrying a run that did not fail)."""

    code = "conflict"


class ObjectUnavailable(RouterError, LookupError):
    """An object the API was asked for is not in a bucket any pipeline uses, or is gone."""

    code = "object_not_found"

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"{bucket}/{key} is not available")
        self.field = "key"


class Unavailable(RouterError):
    """Something the router needs (object store, broker) is not configured or not answering."""

    code = "unavailable"
