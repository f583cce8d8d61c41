# One image, two commands: `tessera server run` and `tessera agent run`.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY native ./native
RUN sed -i '/^nodedir=/d' .npmrc && npm ci --ignore-scripts && npm rebuild better-sqlite3 @tessera/peercred @tessera/ecdsa-verify
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app /app
ENV NODE_ENV=production
ENTRYPOINT ["node", "/app/bin/tessera.js"]
