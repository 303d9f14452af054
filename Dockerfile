# The gateway on Debian 12 with Node 22 LTS.
#
# The build stage builds mediasoup's worker from the npm tarball's sources with the gateway's
# patch set (scripts/mediasoup/README.md): a desk phone's first RTP packet is relayed (no
# syllable lost at answer) and each relayed packet costs the worker less. That takes Debian's
# -dev packages here and their runtime libraries in the final image, and some minutes of
# compiling. `docker compose build --build-arg MEDIASOUP_WORKER=prebuilt` downloads mediasoup's
# prebuilt worker instead (no patches: the gateway finds out at start-up, and its phone legs
# learn their SSRC before relaying, losing their first ~100 ms).
ARG MEDIASOUP_WORKER=patched

FROM node:22-bookworm-slim AS build
ARG MEDIASOUP_WORKER
WORKDIR /app
COPY scripts/install-system-deps.sh scripts/
RUN if [ "$MEDIASOUP_WORKER" = patched ]; then ./scripts/install-system-deps.sh && rm -rf /var/lib/apt/lists/*; fi
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN if [ "$MEDIASOUP_WORKER" = patched ]; then node scripts/ensure-mediasoup-worker.mjs --force-build; \
    else node scripts/ensure-mediasoup-worker.mjs; fi \
 && npm run build && npm prune --omit=dev && rm -rf /root/.cache

FROM node:22-bookworm-slim
ARG MEDIASOUP_WORKER
WORKDIR /app
ENV NODE_ENV=production
# the patched worker links Debian's libraries (the prebuilt one carries its own)
COPY scripts/install-system-deps.sh /tmp/
RUN if [ "$MEDIASOUP_WORKER" = patched ]; then /tmp/install-system-deps.sh --runtime && rm -rf /var/lib/apt/lists/*; fi \
 && rm /tmp/install-system-deps.sh
COPY --from=build /app /app
# runs as the image's unprivileged "node" user (uid 1000): every port is above 1024, and
# only the registration journal (and tap recordings) are written
RUN mkdir -p /app/data /recordings && chown node:node /app/data /recordings
USER node
# SIP over UDP, HTTP (softphone, API, SIP over WebSocket), HTTPS/WSS; RTP as configured
EXPOSE 5060/udp 8080 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.GW_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/server/main.js"]
