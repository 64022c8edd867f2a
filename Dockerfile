# syntax=docker/dockerfile:1
# The weir image.
#
#   docker build -t weir:dev .                                   # this machine's platform
#   docker buildx build --platform linux/amd64,linux/arm64 .     # both (what release.yml pushes)
#
# glibc build on Debian bookworm, run on distroless/cc (same glibc, no shell, no package
# manager). Not musl: musl's allocator serialises a multi-threaded proxy under load.
#
# Multi-arch without emulation: the build stage always runs on the builder's own platform
# (BUILDPLATFORM) and cross-compiles for TARGETPLATFORM with Debian's cross gcc; the final
# stage only copies files, so no instruction runs under QEMU.
#
# The whole repository is the build context less what .dockerignore leaves out (tests, docs,
# charts, tooling): Cargo.toml, Cargo.lock, src/ and the workspace members under crates/ all
# reach the build, which is --locked to the committed Cargo.lock.

ARG RUST_VERSION=1.95.0

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
# Use the image's toolchain as is: rust-toolchain.toml would also fetch rustfmt and clippy.
ARG RUST_VERSION
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
# Set by BuildKit from --platform (default: the builder's platform).
ARG TARGETARCH
# The cross linker and C compiler (ring builds C and assembly) for each target. Debian's
# native gcc also installs under the triplet name, so the same settings serve native builds.
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    AR_x86_64_unknown_linux_gnu=x86_64-linux-gnu-ar \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu;  cross="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
      arm64) target=aarch64-unknown-linux-gnu; cross="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH' (linux/amd64 and linux/arm64 are built)" >&2; exit 1 ;; \
    esac; \
    if [ "$TARGETARCH" != "$(dpkg --print-architecture)" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends $cross; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$target"; \
    echo "$target" > /rust-target
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and target/ between builds (target/ per architecture,
# so a two-platform build runs both compilations side by side); the binary is copied out of
# the cached target/ because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=weir-target-$TARGETARCH \
    target=$(cat /rust-target) \
 && cargo build --release --locked --target "$target" --bin weir \
 && install -D -m 0755 "target/$target/release/weir" /out/usr/local/bin/weir \
 && install -D -m 0644 -t /out/usr/share/doc/weir LICENSE NOTICE

FROM gcr.io/distroless/cc-debian12:nonroot
# docker/metadata-action in release.yml adds version, revision and creation time.
LABEL org.opencontainers.image.title="weir" \
      org.opencontainers.image.description="A Kubernetes-native API gateway with KrakenD aggregation semantics" \
      org.opencontainers.image.source="https://github.com/weir-gateway/weir" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /
# 65532 is distroless' "nonroot"; numeric so runAsNonRoot can verify it.
USER 65532:65532
# Proxy and admin (health, /__stats) ports of the Helm chart's settings.
EXPOSE 8080 9091
ENTRYPOINT ["/usr/local/bin/weir"]
CMD ["--help"]
