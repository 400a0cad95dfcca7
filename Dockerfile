# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run in a slim Debian as a non-root user.

FROM rust:1-bookworm AS build
WORKDIR /src
# Build dependencies first so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY actors/Cargo.toml actors/Cargo.toml
COPY load/floor/Cargo.toml load/floor/Cargo.toml
RUN mkdir -p src actors/src load/floor/src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs actors/src/lib.rs \
 && echo 'fn main() {}' > load/floor/src/main.rs \
 && cargo build --release --locked -p bulkhead || true
COPY . .
RUN touch src/main.rs src/lib.rs actors/src/lib.rs \
 && cargo build --release --locked -p bulkhead \
 && strip target/release/bulkhead

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bulkhead
COPY --from=build /src/target/release/bulkhead /usr/local/bin/bulkhead
COPY config/bulkhead.example.toml /etc/bulkhead/bulkhead.toml
USER 10001:10001
ENV BULKHEAD_CONFIG=/etc/bulkhead/bulkhead.toml \
    BULKHEAD__SERVER__BIND=0.0.0.0:8080 \
    BULKHEAD__LOG__FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/bulkhead"]
CMD ["serve"]
