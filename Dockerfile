# Placeholder: the deployment issue replaces this with a tested multi-stage image
# (Swift build stage with --static-swift-stdlib, slim Debian runtime, non-root, /models, ports 8000/8001).
ARG SWIFT_IMAGE=swift:6.3-bookworm
FROM ${SWIFT_IMAGE} AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libmicrohttpd-dev libjansson-dev libopenblas-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN swift build -c release --static-swift-stdlib --product swerve
EXPOSE 8000 8001
ENTRYPOINT ["/src/.build/release/swerve", "serve", "--model-store", "/src/models"]
