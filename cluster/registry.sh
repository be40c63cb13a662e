#!/usr/bin/env bash
# Build the OCI registry tests run on loopback (CNCF distribution's `registry`, the reference implementation of
# the OCI distribution spec) from the Go module proxy, into its own versioned cache directory, and print the
# binary's path. Built only when missing, so a warm run takes no time. `make test` builds it beside the cluster.
# The consumer module (cluster/go/registry/go.mod, go.sum) is committed; when missing it is recreated.
# Run it as tests do: `registry serve CONFIG` with storage in a temporary folder, listening on 127.0.0.1 only
# (tests/integration/image_publish/registry.py writes the configuration).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

REGISTRY_BIN_DIR=$MLP_CACHE/bin/registry-$DISTRIBUTION_VERSION-$GO_VERSION
REGISTRY_BIN=$REGISTRY_BIN_DIR/registry

if [ ! -x "$REGISTRY_BIN" ]; then
  mkdir -p "$REGISTRY_BIN_DIR"
  cd "$CLUSTER_DIR/go/registry"
  if [ ! -f go.mod ]; then
    go mod init local/registrybuild
    go get "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION"
  fi
  log "building the OCI registry (distribution $DISTRIBUTION_VERSION)"
  start=$SECONDS
  nice go build -trimpath -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_VERSION" \
    -o "$REGISTRY_BIN.tmp" github.com/distribution/distribution/v3/cmd/registry
  mv "$REGISTRY_BIN.tmp" "$REGISTRY_BIN"
  log "built $REGISTRY_BIN in $((SECONDS - start)) s"
fi
echo "$REGISTRY_BIN"
