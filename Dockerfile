# syntax=docker/dockerfile:1
#
# One image for every yztc service; the first argument picks the service
# (it is `python -m <args>`):
#
#   docker run IMAGE gateway
#   docker run IMAGE aggregator
#   docker run IMAGE sms_notifier
#   docker run IMAGE platform_connectors company tencent
#   docker run DEV-IMAGE simulators             (dev clusters only)
#
# The default target is the production image: it holds no simulators/ (the
# SMS-centre simulator serves every code over HTTP; review L7). The `dev`
# target is the same image plus the simulators, for dev clusters only
# (deploy/k8s/components/simulators runs it as image `yztc-simulators`):
#
#   docker build -t registry.example/yztc/yztc:0.1.0 .
#   docker build --target dev -t registry.example/yztc/yztc:dev-simulators .
#
# Why one image: the services share the `yztc` package, the generated stubs
# and one pinned dependency set (constraints.txt), and talk to each other
# through those stubs; one build gives every service the same versions of
# all of them, one digest to pin per release, one image to scan. Per-service
# images would differ by a few small packages, not by weight.
#
# Build from the repository root: docker build -t yztc:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-trixie
ARG GO_IMAGE=golang:1.26-trixie

# --- grpc-health-probe -------------------------------------------------------
# The gRPC services' readiness probe: their ports demand mutual TLS, which the
# kubelet's native gRPC probe cannot speak (deploy/k8s/base/*.yaml).
FROM ${GO_IMAGE} AS health-probe
ARG GRPC_HEALTH_PROBE_VERSION=v0.4.62
ENV CGO_ENABLED=0 GOBIN=/out GOFLAGS=-buildvcs=false
RUN go install "github.com/grpc-ecosystem/grpc-health-probe@${GRPC_HEALTH_PROBE_VERSION}"

# --- dependencies ------------------------------------------------------------
# The runtime dependencies of pyproject.toml, at the versions of
# constraints.txt, in a virtualenv. Wheels only: no compiler is needed here,
# and none can sneak in.
FROM ${PYTHON_IMAGE} AS dependencies
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -c constraints.txt -r requirements.txt \
 && /opt/venv/bin/pip uninstall --yes pip

# --- source and generated stubs ----------------------------------------------
# Stubs are generated here, as `make protos` does, by the pinned grpcio-tools
# (a build tool: it stays in this stage).
FROM ${PYTHON_IMAGE} AS source
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt ./
RUN grep -i '^grpcio-tools==' constraints.txt > build-tools.txt \
 && pip install --no-cache-dir --only-binary=:all: -c constraints.txt -r build-tools.txt
COPY protos/ protos/
COPY yztc/ yztc/
RUN python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. protos/yztc/v1/*.proto
COPY config/ config/
COPY gateway/ gateway/
COPY aggregator/ aggregator/
COPY platform_connectors/ platform_connectors/
COPY sms_notifier/ sms_notifier/
# Bytecode now: the root filesystem is read-only at run time. Hash-checked,
# so it stays valid whatever the copied files' timestamps.
RUN rm -rf protos constraints.txt build-tools.txt \
 && python -m compileall -q --invalidation-mode checked-hash .

# --- the simulators, for the dev target only ---------------------------------
FROM source AS dev-source
COPY simulators/ simulators/
RUN python -m compileall -q --invalidation-mode checked-hash simulators

# --- runtime -----------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="yztc" \
      org.opencontainers.image.description="一证通查 2.0 backend: gateway, aggregator, connectors, SMS notifier" \
      org.opencontainers.image.licenses="UNLICENSED"
# The base image's own pip and setuptools are not needed at run time.
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 yztc \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin yztc
COPY --from=dependencies /opt/venv /opt/venv
COPY --from=health-probe /out/grpc-health-probe /usr/local/bin/grpc-health-probe
COPY --from=source /src /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it. Files stay root-owned:
# the service can read its code, not change it.
USER 10001:10001
# gateway HTTP, aggregator (channel API, internal), notifier, connectors (gRPC),
# Prometheus metrics.
EXPOSE 8080 50051 50053 50052 50060 9464
ENTRYPOINT ["python", "-m"]
CMD ["gateway"]

# --- dev: the runtime plus the simulators (docker build --target dev) ----------
FROM runtime AS dev
COPY --from=dev-source /src/simulators /app/simulators

# --- production: the default target, without the simulators -------------------
FROM runtime AS production
