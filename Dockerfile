# syntax=docker/dockerfile:1
# redis-gateway: multi-stage build. `docker build .` gives the production image (distroless,
# non-root UID 65532); `--target debug` gives the same with a busybox shell for debugging.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src ./src
# The development launcher and its local issuer never ship.
RUN npm run build && rm -rf dist/dev

FROM node:24-bookworm-slim AS runtime-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund --ignore-scripts \
  # typescript arrives as an optional peer of @nestjs/swagger and is not needed at run time.
  && rm -rf node_modules/typescript \
  && npm cache clean --force

# Everything the service needs at run time, in one tree both images copy.
FROM node:24-bookworm-slim AS app
WORKDIR /app
COPY --from=runtime-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config

FROM gcr.io/distroless/nodejs24-debian12:debug-nonroot AS debug
WORKDIR /app
ENV NODE_ENV=production
COPY --from=app /app /app
USER 65532:65532
EXPOSE 8080
CMD ["dist/main.js"]

FROM gcr.io/distroless/nodejs24-debian12:nonroot AS production
WORKDIR /app
ENV NODE_ENV=production
COPY --from=app /app /app
USER 65532:65532
EXPOSE 8080
# The distroless image's entrypoint is node; liveness /healthz, readiness /readyz.
CMD ["dist/main.js"]
