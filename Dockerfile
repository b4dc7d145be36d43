# MarketFlow Ingestor image: a Rust build stage and a slim Debian runtime with only the shared libraries
# the binary links (OpenSSL for librdkafka's TLS and SASL/SCRAM, zlib) and CA certificates.
#
#   docker build --build-arg GIT_COMMIT="$(git rev-parse --short=12 HEAD)" -t marketflow-ingestor .
#   docker run --rm -p 9000:8000 --env-file .env marketflow-ingestor
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.
# The exact build command, kept in one line that scripts/test-chart.sh greps:
# BUILD-CMD: cargo build --release --locked --bin marketflow-ingestor

# The release rust-toolchain.toml pins, so the image builds with the compiler CI tests (chart_assert checks).
FROM rust:1.95.0-bookworm AS builder
# librdkafka is compiled from source by rdkafka-sys's default build (Cargo.toml: rdkafka features
# ["ssl"], no `cmake-build`): librdkafka's own mklove `./configure` (a bash script) with --enable-ssl
# --disable-gssapi --disable-curl --disable-zstd, then `make libs` (GNU make) of its C library and C++
# wrapper, so it needs make, a C and a C++ compiler, pkg-config (openssl-sys and mklove find OpenSSL and
# zlib with it), and the OpenSSL and zlib headers. No cmake (that is the `cmake-build` feature), no Cyrus
# SASL (only the `gssapi` feature uses it: SASL PLAIN and SCRAM are built into librdkafka), no perl
# (only a vendored OpenSSL build needs it). The rust image already has most of these; they are listed so
# that the build does not depend on what the base image happens to ship.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        make \
        gcc \
        g++ \
        pkg-config \
        libssl-dev \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context, as .dockerignore trims it: besides the ingester's own files (src/, build.rs, and
# benches/ that Cargo.toml declares), Cargo needs every workspace member's manifest and targets
# (crates/binance-sim, also a dev-dependency, crates/binance-sbe and its generated spot_stream,
# tools/loadgen, tests/e2e) to resolve the workspace,
# though only the ingester is built.
COPY . .
# The commit for `--version` and the build_info metric: .dockerignore keeps .git out of the context, so
# build.rs reads it from the GIT_COMMIT environment variable ("unknown" when not given). Declared after
# the COPY so that a new commit does not invalidate the apt layer.
ARG GIT_COMMIT=""
ENV GIT_COMMIT=${GIT_COMMIT}
# Registry and target directory are BuildKit cache mounts (faster rebuilds, nothing left in the layer), so
# the binary is copied out of the target directory inside the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin marketflow-ingestor \
    && install -D -m 0755 target/release/marketflow-ingestor /out/marketflow-ingestor

FROM debian:bookworm-slim AS runtime
# Runtime libraries only (what `ldd marketflow-ingestor` lists beyond libc, libm and libgcc_s): OpenSSL 3
# and zlib, plus the CA certificates for TLS to Kafka. No compilers, headers or package caches.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        libssl3 \
        zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ingestor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ingestor
COPY --from=builder /out/marketflow-ingestor /usr/local/bin/marketflow-ingestor
LABEL org.opencontainers.image.title="marketflow-ingestor" \
      org.opencontainers.image.description="Binance WebSocket market data to Kafka, with Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
# Numeric user so that Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 10001:10001
# Prometheus metrics, /healthz and /readyz (PROM_PORT).
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/marketflow-ingestor"]
