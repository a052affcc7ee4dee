# Tendril hub image: node:20-bookworm-slim, multi-stage.
#   build:   npm ci (better-sqlite3 compiles here, hence python3/make/g++) + npm run build,
#            then npm prune --omit=dev and collect package.json + dist/ of every workspace.
#   runtime: production dependencies and compiled output only, runs as the unprivileged `node` user.
# Not built in this repository's CI (no Docker engine there); docker-compose.yml is validated instead.

FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The whole context (see .dockerignore): npm ci needs every workspace's package.json, the build its sources.
COPY . .
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund
# Runtime tree: root manifest, pruned node_modules (workspace links included), each workspace's
# package.json and build output. Workspaces are read from package.json, so new ones need no change here.
RUN mkdir -p /out \
 && cp -a package.json node_modules /out/ \
 && for ws in $(node -p "require('./package.json').workspaces.join(' ')"); do \
      mkdir -p "/out/$ws" && cp -a "$ws/package.json" "/out/$ws/" \
      && if [ -d "$ws/dist" ]; then cp -a "$ws/dist" "/out/$ws/"; fi; \
    done

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    HUB_DATA_DIR=/data
WORKDIR /app
COPY --from=build --chown=root:root /out/ /app/
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM makes the hub flush its spool and close device connections (hub/src/main.ts).
STOPSIGNAL SIGTERM
CMD ["node", "hub/dist/main.js"]
