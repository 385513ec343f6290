"""A client of the kpipe REST API, used by the CLI."""

from __future__ import annotations

import time
from typing import Any

import httpx

from kpipe.core.errors import KpipeError

FINISHED = ("succeeded", "failed")


class ApiError(KpipeError):
    """The API answered with an error; ``message`` is its own explanation."""

    code = "api_error"

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        where = f" ({field})" if field else ""
        super().__init__(f"HTTP {status}: {message}{where}")
        self.status = status
        self.field = field


class ApiClient:
    """Calls the router's REST API with explicit timeouts.

    Example:
        >>> with ApiClient("http://127.0.0.1:8080") as api:  # doctest: +SKIP
        ...     api.put_pipeline("privacy-blur", open("spec.yaml").read())
    """

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 15.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(
                0, f"cannot reach the kpipe API at {self._http.base_url}: {exc}"
            ) from None
        if response.is_error:
            try:
                error = response.json()["error"]
                problems = response.json().get("problems") or []
                message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
                raise ApiError(response.status_code, message or error["message"], error["field"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, response.text[:300]) from None
        return response.json() if response.content else None

    def put_pipeline(self, name: str, document: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "PUT",
            f"/v1/pipelines/{name}",
            content=document.encode(),
            headers={"content-type": "application/yaml"},
        )
        return result

    def get_pipeline(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/pipelines/{name}")
        return result

    def list_runs(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        result: dict[str, Any] = self._call("GET", "/v1/runs", params=params)
        return result

    def start_backfill(
        self, name: str, bucket: str | None, prefix: str | None, concurrency: int
    ) -> dict[str, Any]:
        body = {"bucket": bucket, "prefix": prefix, "concurrency": concurrency}
        result: dict[str, Any] = self._call(
            "POST",
            f"/v1/pipelines/{name}/backfill",
            json={k: v for k, v in body.items() if v is not None},
        )
        return result

    def get_backfill(self, backfill_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/backfills/{backfill_id}")
        return result

    def get_run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/runs/{run_id}")
        return result

    def wait_for_run(
        self, pipeline: str, bucket: str, key: str, etag: str, timeout_s: float
    ) -> dict[str, Any]:
        """Poll until the run of ``pipeline`` over this object version has finished.

        Raises:
            TimeoutError: no finished run within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.list_runs(pipeline=pipeline, source=f"{bucket}/{key}")["runs"]
            mine = [r for r in runs if r["etag"].strip('"') == etag.strip('"')]
            if mine and mine[0]["status"] in FINISHED:
                return dict(mine[0])
            time.sleep(0.25)
        raise TimeoutError(f"no finished run of {pipeline} for {bucket}/{key} in {timeout_s:.0f} s")
