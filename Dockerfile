# syntax=docker/dockerfile:1
# wasmgate: build, precompile the modules into the image's cache, then a slim runtime.
#   docker build -t wasmgate .
#   docker run -p 8080:8080 wasmgate
# To ship your own functions, put them in modules/ before building (or mount a volume on
# /srv/wasmgate/modules and let the gateway compile what is not in the cache).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# A workspace member: cargo reads its manifest even when building only the gateway.
COPY fuzz ./fuzz
RUN cargo build --release --locked --bin wasmgate

FROM build AS precompile
COPY modules /srv/wasmgate/modules
# The same engine settings as `serve`, so the artifacts are the ones it will look for.
RUN /src/target/release/wasmgate compile --modules /srv/wasmgate/modules --cache-dir /srv/wasmgate/cache

FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /srv/wasmgate wasmgate
COPY --from=build /src/target/release/wasmgate /usr/local/bin/wasmgate
COPY --from=precompile --chown=10001:10001 /srv/wasmgate /srv/wasmgate
COPY config/wasmgate.toml /etc/wasmgate/wasmgate.toml
USER 10001
WORKDIR /srv/wasmgate
EXPOSE 8080 9180
# The admin listener binds all interfaces inside the container; publish only 8080.
ENTRYPOINT ["/usr/local/bin/wasmgate", "serve", "--config", "/etc/wasmgate/wasmgate.toml", \
            "--modules", "/srv/wasmgate/modules", "--cache-dir", "/srv/wasmgate/cache", \
            "--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:9180"]
