# The gateway on Debian 12 with Node 22 LTS. With internet access at build time, the install
# downloads mediasoup's prebuilt worker (scripts/ensure-mediasoup-worker.mjs). That worker lacks
# the gateway's patches (scripts/mediasoup/README.md): the gateway finds out at start-up and its
# phone legs learn their SSRC before relaying (the first ~100 ms of each phone leg are lost).
# Building the patched worker here would need Debian's -dev packages in the build stage and
# their runtime libraries in the final image (scripts/mediasoup/README.md lists them).
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN node scripts/ensure-mediasoup-worker.mjs && npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
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
