# quic-relay container: the compiled binary (Bun runtime + native fast path) on slim Debian.
#   docker build -t quic-relay .
#   docker run -d --name quic-relay --network host -v quic-relay-state:/var/lib/quic-relay quic-relay
# Host networking avoids the Docker NAT hop for high packet rates; metrics stay on the host's
# 127.0.0.1:9464. With published ports instead (bridge network), metrics must listen on the
# container's own interface and be published on the host's loopback only (docs/deploy.md, section 7):
#   docker run -d --name quic-relay -p 4433:4433/udp \
#     -e QUIC_RELAY_METRICS_LISTEN=0.0.0.0:9464 -p 127.0.0.1:9464:9464 \
#     -v quic-relay-state:/var/lib/quic-relay quic-relay

# --- build: Bun from the npm registry (pinned), the N-API addon with cmake/g++, then `bun build --compile`
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs npm cmake g++ make libssl-dev \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g bun@1.4.5
WORKDIR /src
# The postinstall step builds the addon, so its sources come in with the manifests.
COPY package.json bun.lock CMakeLists.txt tsconfig.json bunfig.toml ./
COPY native ./native
RUN bun install --frozen-lockfile
COPY src ./src
RUN bun run build:native && bun run build \
 && ./dist/quic-relay --help > /dev/null \
 && ./dist/quic-relay health --help > /dev/null

# --- runtime: the binary only, an unprivileged user, a volume for the session state file
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/quic-relay --shell /usr/sbin/nologin quic-relay \
 && install -d -o quic-relay -g quic-relay -m 0700 /var/lib/quic-relay
COPY --from=build /src/dist/quic-relay /usr/local/bin/quic-relay
USER quic-relay
# Metrics and health on loopback: with --network host that is the host's loopback, never a public
# address. Exposing them is a deliberate -e QUIC_RELAY_METRICS_LISTEN=... (docs/deploy.md, section 7).
ENV QUIC_RELAY_STATE_FILE=/var/lib/quic-relay/sessions.db \
    QUIC_RELAY_METRICS_LISTEN=127.0.0.1:9464 \
    QUIC_RELAY_LOG_FORMAT=json
VOLUME ["/var/lib/quic-relay"]
# UDP only: the metrics port is not exposed (`docker run -P` would publish it on every host address).
EXPOSE 4433/udp
# No curl in the image: the binary asks its own /healthz, on the address QUIC_RELAY_METRICS_LISTEN
# names (a wildcard is asked on loopback), and exits 0 on a 200, 1 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/quic-relay", "health"]
# docker stop sends SIGTERM: the relay saves its sessions and exits 0 within 5 s (docker waits 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/quic-relay"]
CMD ["--port", "4433"]
