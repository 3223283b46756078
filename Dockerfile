# syntax=docker/dockerfile:1
#
# SecretHub images, both static and non-root on distroless:
#
#   docker build -t secrethub .                      # /secrethub (server, operator, CLI) and /secrethub-agent
#   docker build --target agent -t secrethub-agent .  # /secrethub-agent only: the injected sidecar
#
# The default (last) stage is the full image; the Helm chart runs
# `secrethub server` and `secrethub operator` from it.

ARG GO_VERSION=1.26

# --- build: both binaries, static (CGO off), paths and debug info stripped.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -ldflags "-s -w" -o /out/secrethub ./cmd/secrethub && \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -ldflags "-s -w" -o /out/secrethub-agent ./cmd/secrethub-agent

# --- agent: the slim sidecar image the webhook injects.
FROM gcr.io/distroless/static-debian12:nonroot AS agent
COPY --from=build /out/secrethub-agent /secrethub-agent
USER 65532:65532
ENTRYPOINT ["/secrethub-agent"]

# --- secrethub: the default image, one binary for every role.
FROM gcr.io/distroless/static-debian12:nonroot AS secrethub
COPY --from=build /out/secrethub /secrethub
COPY --from=build /out/secrethub-agent /secrethub-agent
USER 65532:65532
EXPOSE 4000 4001
ENTRYPOINT ["/secrethub"]
