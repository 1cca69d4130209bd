#!/usr/bin/env bash
# Validate docker-compose.yml with `docker compose config` (the client only: no engine needed).
# The compose plugin is not a Debian package here; when it is missing we build it from the
# Go module proxy once (a few minutes) into ~/.docker/cli-plugins, where docker finds it.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE_VERSION="${COMPOSE_VERSION:-v2.32.4}"
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
if ! docker compose version >/dev/null 2>&1; then
    command -v go >/dev/null || { echo "check-compose: needs Go to build the compose plugin" >&2; exit 1; }
    echo "check-compose: building docker compose $COMPOSE_VERSION from the Go module proxy (once)"
    gobin="$(mktemp -d)"
    GOFLAGS=-mod=mod GOBIN="$gobin" go install "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION"
    mkdir -p "$plugin_dir"
    mv "$gobin/cmd" "$plugin_dir/docker-compose"
    rm -rf "$gobin"
fi
docker compose -f docker-compose.yml config >/dev/null
echo "check-compose: docker-compose.yml is valid ($(docker compose version --short 2>/dev/null || echo plugin))"
