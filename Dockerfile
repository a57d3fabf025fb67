# The foresight image: one binary (`serve`, `backend`, `loadgen`, ...) with Kubernetes support
# (EndpointSlice discovery and the Deployment actuator), on a minimal runtime image as non-root.
#
#   docker build -t foresight:latest .
#   docker run --rm foresight:latest --version
#
# The build stage compiles with the release-lto profile (the proxy's fastest build; the link
# takes about five minutes). The runtime stage is distroless (glibc and libgcc, no shell, no
# package manager), matching the builder's Debian 12, and runs as the unprivileged user 65532.
FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --profile release-lto --features kubernetes -p foresight \
 && install -m 0755 target/release-lto/foresight /foresight

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /foresight /usr/local/bin/foresight
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/foresight"]
CMD ["serve", "--config", "/etc/foresight/foresight.toml"]
