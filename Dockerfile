# redis-persistence-exporter container image.
#
#   docker build -t redis-persistence-exporter .
#   docker run --rm -p 9645:9645 -v "$PWD/config.toml:/etc/redis-persistence-exporter/config.toml:ro" \
#       redis-persistence-exporter --config /etc/redis-persistence-exporter/config.toml

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so editing src/ does not refetch crates.
COPY Cargo.toml Cargo.lock ./
RUN cargo fetch --locked
COPY . .
# The release profile is the shipped one: no debug info, symbols stripped (about 11 MB).
RUN cargo build --release --locked --bin redis-persistence-exporter \
    && cp target/release/redis-persistence-exporter /redis-persistence-exporter

FROM debian:bookworm-slim
# ca-certificates: rediss:// targets verify the server against the system roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 exporter \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin exporter
COPY --from=build /redis-persistence-exporter /usr/local/bin/redis-persistence-exporter
USER 10001:10001
EXPOSE 9645
# Without --config it polls redis://127.0.0.1:6379 and serves on 0.0.0.0:9645.
ENTRYPOINT ["/usr/local/bin/redis-persistence-exporter"]
CMD ["--log.format", "json"]
