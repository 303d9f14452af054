# The gateway on Debian 12 with Node 20. With internet access at build time, the install
# downloads mediasoup's prebuilt worker (scripts/ensure-mediasoup-worker.mjs).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN node scripts/ensure-mediasoup-worker.mjs && npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app /app
# SIP over UDP, HTTP (softphone, API, SIP over WebSocket), HTTPS/WSS; RTP as configured
EXPOSE 5060/udp 8080 8443
CMD ["node", "dist/server/main.js"]
