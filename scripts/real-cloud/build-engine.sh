#!/usr/bin/env bash
# Build the Pulumi engine pieces from source with Go modules from the Go module proxy alone, into
# $ENGINE_DIR/bin (see versions.sh), with GOMODCACHE and GOCACHE under $ENGINE_DIR so that a second
# build on the same machine is a cache hit (and the binaries themselves are reused when present):
#   pulumi                       CLI/engine   github.com/pulumi/pulumi/pkg/v3/cmd/pulumi (proxy)
#   pulumi-language-python       Python host  third_party/pulumi-language-python-*/main.go
#   pulumi-language-python-exec  its shim     from the sdk/v3 module zip (python/cmd/)
#   pulumi-resource-openstack    provider     third_party/pulumi-openstack-*/provider
# The two third_party sources are upstream files the proxy does not serve (third_party/README.md).
# usage: build-engine.sh [--force]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/versions.sh"
BIN="$ENGINE_DIR/bin"; WORK="$ENGINE_DIR/work"
LANGHOST_MAIN="$REPO/third_party/pulumi-language-python-$LANGHOST_VERSION/main.go"
OPENSTACK_SRC="$REPO/third_party/pulumi-openstack-v$OPENSTACK_VERSION/provider"
want=(pulumi pulumi-language-python pulumi-language-python-exec providers/pulumi-resource-openstack)
complete() { for f in "${want[@]}"; do [ -x "$BIN/$f" ] || return 1; done; }
if [ "${1:-}" != --force ] && complete; then echo "engine: cached in $BIN"; exit 0; fi

command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || { echo "build-engine: needs Go (https://go.dev/dl/) to build the Pulumi engine" >&2; exit 1; }
export GOMODCACHE="$ENGINE_DIR/gomodcache" GOCACHE="$ENGINE_DIR/gocache" GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOPATH="$ENGINE_DIR/gopath"
mkdir -p "$BIN/providers" "$WORK"
step() { local name=$1; shift; local t0=$SECONDS; echo "== $name" >&2; "$@"; echo "TIMING $name: $((SECONDS - t0)) s" >&2; }
T0=$SECONDS
wrapper_mod() {  # pkg/go.mod has `replace .../sdk/v3 => ../sdk` (go install pkg@v refuses): a wrapper module
  cat > go.mod <<EOM
module fjmig.local/build/$1

go 1.24

require (
	github.com/pulumi/pulumi/pkg/v3 $PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 $PULUMI_VERSION
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
EOM
}

# 1. the CLI
mkdir -p "$WORK/pulumi"; cd "$WORK/pulumi"; wrapper_mod pulumi
step "pulumi: download" go get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@$PULUMI_VERSION"
step "pulumi: build" go build -trimpath \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
  -o "$BIN/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
mv "$BIN/pulumi.tmp" "$BIN/pulumi"

# 2. the Python language host, against the same pkg/sdk (shares the build cache), and its exec shim
mkdir -p "$WORK/pulumi-language-python"; cd "$WORK/pulumi-language-python"; wrapper_mod pulumi-language-python
install -m 0644 "$LANGHOST_MAIN" main.go
step "pulumi-language-python: tidy" go mod tidy
step "pulumi-language-python: build" go build -trimpath \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$LANGHOST_VERSION" \
  -o "$BIN/pulumi-language-python.tmp" .
mv "$BIN/pulumi-language-python.tmp" "$BIN/pulumi-language-python"
SDKDIR=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 0755 "$SDKDIR/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"

# 3. the OpenStack provider: upstream go.mod/go.sum unchanged; schema-embed.json is what upstream's
#    `go generate` writes (schema.json with the version set)
rm -rf "$WORK/pulumi-openstack-provider"; cp -r "$OPENSTACK_SRC" "$WORK/pulumi-openstack-provider"
chmod -R u+w "$WORK/pulumi-openstack-provider"; cd "$WORK/pulumi-openstack-provider"
python3 - "$OPENSTACK_VERSION" <<'PY'
import json, sys
d = json.load(open("cmd/pulumi-resource-openstack/schema.json"))
d["version"] = sys.argv[1]
json.dump(d, open("cmd/pulumi-resource-openstack/schema-embed.json", "w"), separators=(",", ":"))
PY
export GOFLAGS=-mod=readonly
step "pulumi-resource-openstack: download" go list -deps ./cmd/pulumi-resource-openstack >/dev/null
step "pulumi-resource-openstack: build" go build -trimpath \
  -ldflags "-s -w -X github.com/pulumi/pulumi-openstack/provider/v5/pkg/version.Version=$OPENSTACK_VERSION" \
  -o "$BIN/providers/pulumi-resource-openstack.tmp" ./cmd/pulumi-resource-openstack
mv "$BIN/providers/pulumi-resource-openstack.tmp" "$BIN/providers/pulumi-resource-openstack"
# the module cache is read-only by default: make it removable with rm -rf
chmod -R u+w "$GOMODCACHE" 2>/dev/null || true
echo "engine: built in $BIN in $((SECONDS - T0)) s" >&2
