# MarketFlow Ingestor image: a Rust build stage and a slim Debian runtime with only the shared libraries
# the binary links (OpenSSL for librdkafka's TLS, Cyrus SASL) and CA certificates.
#
#   docker build -t marketflow-ingestor .
#   docker run --rm -p 9000:8000 --env-file .env marketflow-ingestor
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.
# The exact build command, kept in one line that scripts/test-chart.sh greps:
# BUILD-CMD: cargo build --release --locked --bin marketflow-ingestor

FROM rust:1-bookworm AS builder
# librdkafka (rdkafka-sys, cmake-build) is compiled from source: cmake and a C toolchain (already in the
# image), pkg-config to find OpenSSL, zlib and Cyrus SASL headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake \
        pkg-config \
        libssl-dev \
        zlib1g-dev \
        libsasl2-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Registry and target directory are BuildKit cache mounts (faster rebuilds, nothing left in the layer), so
# the binary is copied out of the target directory inside the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin marketflow-ingestor \
    && install -D -m 0755 target/release/marketflow-ingestor /out/marketflow-ingestor

FROM debian:bookworm-slim AS runtime
# Runtime libraries only: no compilers, headers or package caches.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        libssl3 \
        libsasl2-2 \
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
