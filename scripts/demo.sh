#!/usr/bin/env bash
# moat's main job on a fresh Debian machine: install what is needed, start dockerd, build the local image,
# bring up the seed's three-tier example and print its reachability matrix. Without an engine it analyses the
# example's Compose file instead (and says so). Extra arguments go to `moat demo` (e.g. --down).
set -u
cd "$(dirname "$0")/.." || exit 1
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "demo: installing npm packages" >&2
  npm ci --no-audit --no-fund >&2 || { echo "demo: npm ci failed" >&2; exit 1; }
fi
if ! bash scripts/ensure-dockerd.sh; then
  echo "demo: could not start a Docker engine; the demo will analyse the Compose file only" >&2
fi
if [ $# -eq 0 ] && [ "$(id -u)" = 0 ]; then set -- --enforce; fi
exec node bin/moat.js demo "$@"
