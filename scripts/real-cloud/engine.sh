#!/usr/bin/env bash
# Find the Pulumi engine for the real tier, or build it (build-engine.sh) where it is missing.
#   engine.sh find     print two lines: the directory of `pulumi` (with pulumi-language-python next
#                      to it) and the pulumi-resource-openstack binary; exit 1 if there is none
#   engine.sh ensure   the same, building into the cache first when nothing is found
# A user's own installation wins (Pulumi's installer puts pulumi and pulumi-language-python in
# ~/.pulumi/bin; `pulumi plugin install resource openstack 5.5.1` puts the plugin under
# $PULUMI_HOME/plugins); else the cache of build-engine.sh ($ENGINE_DIR, see versions.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/versions.sh"

installed() {
  local cli dir plugin
  cli=$(command -v pulumi 2>/dev/null) || return 1
  dir=$(dirname "$(readlink -f "$cli")")
  [ -x "$dir/pulumi-language-python" ] || return 1
  plugin="${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-openstack-v$OPENSTACK_VERSION/pulumi-resource-openstack"
  [ -x "$plugin" ] || return 1
  printf '%s\n%s\n' "$dir" "$plugin"
}

cached() {
  local bin=$ENGINE_DIR/bin
  for f in pulumi pulumi-language-python pulumi-language-python-exec providers/pulumi-resource-openstack; do
    [ -x "$bin/$f" ] || return 1
  done
  printf '%s\n%s\n' "$bin" "$bin/providers/pulumi-resource-openstack"
}

case ${1:-} in
  find) installed || cached ;;
  ensure) installed || cached || { "$HERE/build-engine.sh" >&2 && cached; } ;;
  *) echo "usage: $0 find|ensure" >&2; exit 2 ;;
esac
