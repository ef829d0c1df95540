# mlplan in a container: the CLI, its locked dependencies (requirements.lock, installed with uv) and the Pulumi
# CLI at a pinned, checksum-verified version, running as a non-root user. For CI jobs that run
# `mlplan plan SPEC --out DIR`, post DIR/PLAN.md on the pull request, and run `mlplan deploy DIR --preview`.
#
#   docker build -t mlplan .
#   docker build --build-arg PULUMI_SHA256=<sha256 of pulumi-v3.272.0-linux-x64.tar.gz> -t mlplan .   # pinned
#   docker run --rm -v "$PWD:/work" mlplan plan examples/chat-eu-pii.yaml --out plans/chat
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ------------------------------------------------------------------ Pulumi CLI: pinned version, verified digest
FROM ${PYTHON_IMAGE} AS pulumi
# The CLI release matching the locked pulumi SDK (requirements.lock: pulumi==3.272.0).
ARG PULUMI_VERSION=3.272.0
# Optional pin of the tarball's SHA-256; the digest is always checked against the release's checksums file.
ARG PULUMI_SHA256=""
COPY stacks/deploy/pulumi_install.py /tmp/pulumi_install.py
RUN python /tmp/pulumi_install.py --version "${PULUMI_VERSION}" --sha256 "${PULUMI_SHA256}" --dest /opt/pulumi \
    && /opt/pulumi/bin/pulumi version

# ------------------------------------------------------------------ mlplan and its locked dependencies
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1
RUN pip install --no-cache-dir "uv==0.13.8" \
    && python -m venv /opt/mlplan
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
RUN uv pip install --python /opt/mlplan/bin/python -r requirements.lock
COPY mlplan ./mlplan
COPY planner ./planner
COPY stacks ./stacks
COPY serving ./serving
# Bytecode compiled into the image (uv installs none, and the runtime sets PYTHONDONTWRITEBYTECODE): without it
# every `mlplan plan` compiles the Pulumi SDKs from source again, seconds per run. unchecked-hash: the .pyc files do
# not depend on file times, which the copy into the runtime stage need not keep.
RUN uv pip install --python /opt/mlplan/bin/python --no-deps . \
    && /opt/mlplan/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/mlplan/lib > /dev/null \
    && /opt/mlplan/bin/mlplan --help > /dev/null

# ------------------------------------------------------------------ runtime image
FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 mlplan \
    && useradd --uid 10001 --gid mlplan --create-home --shell /usr/sbin/nologin mlplan
COPY --from=pulumi /opt/pulumi /opt/pulumi
COPY --from=build /opt/mlplan /opt/mlplan
ENV PATH=/opt/mlplan/bin:/opt/pulumi/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PULUMI_SKIP_UPDATE_CHECK=true \
    RAY_USAGE_STATS_ENABLED=0
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["mlplan"]
CMD ["--help"]
