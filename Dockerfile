# The backuprepo image: one binary that is the Kubernetes controller (`backuprepo controller`),
# the CLI, and, under the name `datasafed`, KubeBlocks' transfer tool.
#
#   docker build -t backuprepo:0.1.0 .     # the image `backuprepo install` uses by default
#
# Build stage: the release binary, with the cargo registry and target directory cached between
# builds (BuildKit). The symlink is made here because the runtime image has no shell.
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p backuprepo-cli \
    && install -D -m 0755 target/release/backuprepo /out/usr/local/bin/backuprepo \
    && ln -s backuprepo /out/usr/local/bin/datasafed

# Runtime stage: distroless with glibc and libgcc (what the binary links), no shell, no
# package manager. 65532 is distroless' `nonroot` user; it is given by number so that the
# kubelet can verify `runAsNonRoot` (a user name cannot be checked and is refused).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/backuprepo"]
