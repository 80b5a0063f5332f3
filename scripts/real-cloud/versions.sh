# The engine pieces the real tier uses (sourced by the other scripts). The provider version must
# equal the pulumi-openstack pin in pyproject.toml: the engine looks a plugin up by exact version.
PULUMI_VERSION=${PULUMI_VERSION:-v3.276.0}          # CLI/engine, from the Go module proxy
LANGHOST_VERSION=${LANGHOST_VERSION:-v3.259.0}      # third_party/pulumi-language-python-v3.259.0
OPENSTACK_VERSION=${OPENSTACK_VERSION:-5.5.1}       # third_party/pulumi-openstack-v5.5.1
ENGINE_KEY="pulumi-${PULUMI_VERSION}_langhost-${LANGHOST_VERSION}_openstack-${OPENSTACK_VERSION}"
FJMIG_CACHE=${FJMIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fjmig}
ENGINE_DIR="$FJMIG_CACHE/engine/$ENGINE_KEY"       # bin/, gomodcache/, gocache/, work/
