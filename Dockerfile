# syntax=docker/dockerfile:1
# The weir image: `docker build -t weir:dev .` (BuildKit, the default builder since Docker 23).
#
# glibc build on Debian bookworm, run on distroless/cc (same glibc, no shell, no package
# manager). Not musl: musl's allocator serialises a multi-threaded proxy under load.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS build
# Use the image's toolchain as is: rust-toolchain.toml would also fetch rustfmt and clippy.
ARG RUST_VERSION
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and target/ between builds; the binary is copied out
# of the cached target/ because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin weir \
 && install -D -m 0755 target/release/weir /out/weir

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/weir /usr/local/bin/weir
# 65532 is distroless' "nonroot"; numeric so runAsNonRoot can verify it.
USER 65532:65532
# Proxy and admin (health, /__stats) ports of the Helm chart's settings.
EXPOSE 8080 9091
ENTRYPOINT ["/usr/local/bin/weir"]
CMD ["--help"]
