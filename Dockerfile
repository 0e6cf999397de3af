# syntax=docker/dockerfile:1
# eipd container image: static binary on distroless, non-root, read-only root
# friendly (eipd writes nothing to disk). The health check is defined in the ECS
# task definition (deploy/ecs), which runs `/eipd healthcheck`: the image has no
# shell or curl.
# The builder runs on the machine's own platform and cross-compiles for the
# target one (docker buildx build --platform linux/amd64,linux/arm64): no
# emulation, and one module download for every platform.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG VERSION=dev
ARG REVISION=unknown
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Dependencies in their own layer: rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath \
	-ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
	-o /out/eipd .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/eipd /eipd
USER nonroot:nonroot
# 9380: /metrics /healthz /readyz /status (peers probe it on the private IP).
EXPOSE 9380
ENTRYPOINT ["/eipd", "run"]
