# syntax=docker/dockerfile:1
# portcullis: multi-stage build → slim runtime, non-root, health check on the admin listener.
#
#   docker build --build-arg VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" \
#       -t portcullis .
#   docker compose up -d       # docker-compose.yml: creating ./deploy first, mounts, volume
#
# The configuration is PORTCULLIS_CONFIG (a mounted file); key files must belong to uid 10001.

# The version the image is labelled with (org.opencontainers.image.version). When given, the
# build checks that it is the binary's own, so the label cannot lie.
ARG VERSION=unknown

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so that source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY benches benches
COPY config/portcullis.toml config/portcullis.toml
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY docs/openapi.json docs/openapi.json
COPY src src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/portcullis /out/portcullis
# After the build, so that the label's value does not invalidate the compiled layers.
ARG VERSION
RUN if [ "$VERSION" != unknown ]; then \
        test "$(/out/portcullis --version)" = "portcullis $VERSION" \
        || { echo "VERSION=$VERSION but the binary is $(/out/portcullis --version)" >&2; exit 1; }; \
    fi

FROM debian:bookworm-slim
# CA certificates: https:// upstreams and rediss:// stores with a public CA verify against them
# (the gateway warns at start when the store is empty). Unpinned on purpose: the distribution's
# current roots are the point. The build fails if the bundle did not come out non-empty.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && test -s /etc/ssl/certs/ca-certificates.crt
RUN groupadd --system --gid 10001 portcullis \
    && useradd --system --uid 10001 --gid portcullis --home-dir /var/lib/portcullis \
        --create-home portcullis \
    && mkdir -p /etc/portcullis
COPY --from=build /out/portcullis /usr/local/bin/portcullis
USER 10001:10001
WORKDIR /var/lib/portcullis
ENV PORTCULLIS_CONFIG=/etc/portcullis/config/portcullis.toml
EXPOSE 8443
# The admin listener is loopback-only by default; the check runs inside the container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/portcullis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve"]
# Last, so that a new version relabels the image without rebuilding its layers.
ARG VERSION
LABEL org.opencontainers.image.title="portcullis" \
      org.opencontainers.image.description="A reverse-proxy authentication gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
