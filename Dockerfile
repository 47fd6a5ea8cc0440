# Swerve container image: a Swift build stage, then a slim Debian runtime with only the libraries
# the binary links (libmicrohttpd, jansson, OpenBLAS; the Swift runtime is linked in statically).
#
#   docker build -t swerve .                        # full build (needs the official Swift image)
#   docker run --rm -p 8000:8000 swerve             # serves the bundled models/digits
#   make image                                      # offline: runtime stage around a host-built binary
#
# Targets: `runtime` (the default, last stage) copies the binary from the build stage; `prebuilt`
# copies `.build-image/swerve` from the build context instead (what `make image` builds, with podman,
# where no registry is reachable). Both share `runtime-base`, so what they run is the same.
# A CUDA variant: see docs/deployment.md ("CUDA image").

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- build: release binary with the Swift standard library linked in statically ------------------
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd-dev libjansson-dev libopenblas-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Manifest first so the dependency fetch is cached across source edits.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
# SwiftPM wants every declared target's folder, test targets included.
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product swerve \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/swerve" /out/swerve

# --- runtime-base: what every runtime image has, except the binary ---------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd12 libjansson4 libopenblas0-pthread \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 swerve \
    && useradd --no-log-init --uid 10001 --gid swerve --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin swerve
# The bundled example model; mount a volume over /models to serve your own store.
COPY models /models
# Defaults as SWERVE_* variables, so `docker run -e SWERVE_PORT=9000 ...` overrides one of them.
# The management API stays on loopback: to open it, set SWERVE_MANAGEMENT_HOST=0.0.0.0 together
# with SWERVE_MANAGEMENT_TOKEN (see docs/deployment.md).
ENV SWERVE_MODEL_STORE=/models \
    SWERVE_HOST=0.0.0.0 \
    SWERVE_PORT=8000 \
    SWERVE_MANAGEMENT_HOST=127.0.0.1 \
    SWERVE_MANAGEMENT_PORT=8001 \
    SWERVE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /models
EXPOSE 8000 8001
# No curl in the image: bash's /dev/tcp speaks just enough HTTP for the readiness check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SWERVE_PORT:-8000} && printf 'GET /v2/health/ready HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [ \"$status\" = 200 ]"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/swerve", "serve"]
CMD []

# --- prebuilt: the runtime around a binary built on the host (make image) ------------------------
FROM runtime-base AS prebuilt
COPY .build-image/swerve /usr/local/bin/swerve

# --- runtime (default): the runtime around the binary from the build stage ------------------------
FROM runtime-base AS runtime
COPY --from=build /out/swerve /usr/local/bin/swerve
