#!/usr/bin/env bash
# What the real tier needs on this machine, idempotently: the OpenStack packages of the loopback
# cloud (root, apt-get) and the Pulumi engine (the user's own installation, else the cached build,
# else a build: ~15 min cold on 2 cores, seconds once cached). In CI (CI or FJMIG_REQUIRE_REAL set)
# a failure fails; elsewhere it is a warning and the real tier skips, saying why.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
required() { case "${CI:-}${FJMIG_REQUIRE_REAL:-}" in ""|0|false|00|falsefalse) return 1 ;; *) return 0 ;; esac; }
fail() {
  if required; then echo "real-cloud setup: $*" >&2; exit 1; fi
  echo "real-cloud setup: $* (the real tier will skip)" >&2; exit 0
}
bash "$HERE/openstack.sh" install || fail "the OpenStack packages are missing"
engine=$(bash "$HERE/engine.sh" ensure) || fail "no Pulumi engine (see scripts/real-cloud/build-engine.sh)"
echo "real-cloud setup: engine in $(echo "$engine" | head -1)" >&2
