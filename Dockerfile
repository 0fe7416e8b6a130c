# syntax=docker/dockerfile:1
# The wif tools in one image: the eight binaries, wif-refresh (the cron/systemd pipeline
# script) and the container helper wif-refresh-loop. deploy/kubernetes/ runs
# it as the refresher sidecar and as wif-serve; docs/DEPLOY.md explains the layout.
#
#   docker build -t wif:0.1.0 .
#   docker run --rm wif:0.1.0 wif-inspect --version
#
# The build steps live in scripts/container/build-rootfs.sh, so CI (which has no container
# engine) runs exactly them into a staging directory and checks the result
# (scripts/check-deploy.sh). Pin the base images by digest in your own builds.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first: this layer is rebuilt only when Cargo.lock changes.
COPY Cargo.toml Cargo.lock ./
COPY .cargo/config.toml .cargo/config.toml
RUN cargo fetch --locked
COPY . .
RUN scripts/container/build-rootfs.sh --profile release /rootfs

# bookworm-slim rather than distroless: wif-refresh is a bash script that needs flock
# (util-linux), GNU date and sha256sum (coreutils), all in the slim image's essential set,
# so nothing is installed. No ca-certificates either: the tools carry the Mozilla roots
# (webpki-roots) and take a private bundle from --ca-file or SSL_CERT_FILE.
FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="wif" \
      org.opencontainers.image.description="Short-lived Google Cloud credentials via Workload Identity Federation, published over mutual TLS" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="https://github.com/wif/wif/blob/main/docs/DEPLOY.md" \
      org.opencontainers.image.source="https://github.com/wif/wif"
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it and file ownership on
# shared volumes is the same in every container of the pod.
RUN groupadd --system --gid 65532 wif \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/wif --no-create-home --shell /usr/sbin/nologin wif
COPY --from=build --chown=0:0 /rootfs/ /
RUN chown 65532:65532 /var/lib/wif
USER 65532:65532
WORKDIR /var/lib/wif
EXPOSE 8443
# By default the server, with the file layout of deploy/kubernetes/ (cert-manager's key
# names): mount the server certificate secret at /etc/wif/tls, the client CA at
# /etc/wif/client-ca, and a token directory at /var/lib/wif. Any tool runs by naming it:
# `docker run IMAGE wif-refresh-loop --config … --token-out …`.
CMD ["wif-serve", "--listen", "0.0.0.0:8443", "--cert", "/etc/wif/tls/tls.crt", "--key", "/etc/wif/tls/tls.key", "--client-ca", "/etc/wif/client-ca/ca.crt", "--token", "/var/lib/wif/wif_token.txt"]
