# syntax=docker/dockerfile:1
# One image for every kpipe component in the cluster. The command picks it:
#   part     functions-framework --source functions/main.py --target <part> --asgi
#            (the default command; FUNCTION_TARGET=<part> works too)
#   router   python -m router --host 0.0.0.0 --port 8080
#   adapter  python -m eventing.adapter --host 0.0.0.0 --port 8080
# Model weights are never in the image: Triton reads them from the model
# repository (`kpipe models push`).
#
#   docker build -t ghcr.io/kpipe/kpipe:0.1.0 .

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/kpipe
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY kpipe kpipe
COPY eventing eventing
COPY router router
COPY functions functions
# requirements.lock pins the local stack and the test tools too (nvidia-pytriton,
# moto, pytest ...), which a cluster image must not carry; so install only what
# the project needs (plus the PostgreSQL driver), constrained to the locked
# versions, then fail the build if anything installed is not pinned there.
RUN /opt/kpipe/bin/pip install --constraint requirements.lock . "psycopg[binary]" \
 && /opt/kpipe/bin/pip check
RUN /opt/kpipe/bin/pip freeze | grep -v '^kpipe' | { grep -vxFf requirements.lock || true; } > /tmp/unpinned; \
    if [ -s /tmp/unpinned ]; then echo "not in requirements.lock:" >&2; cat /tmp/unpinned >&2; exit 1; fi

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/kpipe/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PORT=8080
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin kpipe
COPY --from=build /opt/kpipe /opt/kpipe
WORKDIR /app
# functions-framework loads the targets from a file path; the package itself is installed.
COPY functions/main.py functions/main.py
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001
EXPOSE 8080
CMD ["functions-framework", "--source", "functions/main.py", "--asgi"]
