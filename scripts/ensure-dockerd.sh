#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock (idempotent, safe to run concurrently).
#  1. installs the Debian packages moat's tests need when missing:
#     docker.io iptables nftables ipset iproute2 busybox-static iperf3
#  2. starts dockerd in the background (log: /var/log/moat-dockerd.log) when the socket does not answer;
#  3. waits, bounded (MOAT_DOCKERD_WAIT seconds, default 60), until GET /_ping answers.
# Exit status 0 when the engine answers, 1 otherwise. Needs root for steps 1 and 2.
# MOAT_DOCKERD_ARGS: extra dockerd flags for a dockerd started here (words; tests restart their own
# dockerd with e.g. --userland-proxy=false). Only flags of the form --name or --name=value are taken.
set -u

SOCK=/var/run/docker.sock
LOG=/var/log/moat-dockerd.log
WAIT=${MOAT_DOCKERD_WAIT:-60}
PACKAGES=(docker.io iptables nftables ipset iproute2 busybox-static iperf3)

say() { echo "ensure-dockerd: $*" >&2; }

# GET /_ping over the unix socket, with node (always present: the project runs on it). No curl needed.
ping_engine() {
  [ -S "$SOCK" ] || return 1
  node -e '
    const req = require("http").get({ socketPath: process.argv[1], path: "/_ping", timeout: 2000 }, (res) => {
      let body = ""; res.on("data", (c) => (body += c));
      res.on("end", () => process.exit(res.statusCode === 200 && body.trim() === "OK" ? 0 : 1));
    });
    req.on("timeout", () => { req.destroy(); process.exit(1); });
    req.on("error", () => process.exit(1));
  ' "$SOCK" 2>/dev/null
}

if ping_engine; then
  exit 0
fi

# Serialise concurrent callers (several test runs may start at once).
exec 9>/run/moat-ensure-dockerd.lock 2>/dev/null || exec 9>/tmp/moat-ensure-dockerd.lock
if command -v flock >/dev/null 2>&1; then
  flock -w $((WAIT + 600)) 9 || say "could not take the lock; continuing"
fi
if ping_engine; then
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing+=("$p") ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing packages ${missing[*]} and not root: cannot install them"
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || say "apt-get update failed"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || { say "apt-get install failed"; exit 1; }
fi

if ! command -v dockerd >/dev/null 2>&1; then
  say "dockerd not found after installing docker.io"
  exit 1
fi

# Is a dockerd process alive? (/proc scan: pgrep is not on minimal images)
dockerd_running() {
  local c
  for c in /proc/[0-9]*/comm; do
    [ "$(cat "$c" 2>/dev/null)" = dockerd ] && return 0
  done
  return 1
}

if dockerd_running; then
  say "dockerd is running but $SOCK does not answer yet; waiting"
else
  if [ "$(id -u)" != 0 ]; then
    say "dockerd is not running and we are not root: cannot start it"
    exit 1
  fi
  say "starting dockerd (log: $LOG)"
  # A stale pid file from an earlier session would stop dockerd from starting.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  extra=()
  for a in ${MOAT_DOCKERD_ARGS:-}; do
    if [[ "$a" =~ ^--[a-z][a-z0-9-]*(=[A-Za-z0-9._/:-]*)?$ ]]; then extra+=("$a"); else say "ignoring dockerd argument: $a"; fi
  done
  # setsid + nohup: dockerd outlives this script and the test run that called it.
  setsid nohup dockerd "${extra[@]}" >>"$LOG" 2>&1 </dev/null &
fi

for ((i = 0; i < WAIT * 2; i++)); do
  if ping_engine; then
    say "engine answers on $SOCK"
    exit 0
  fi
  sleep 0.5
done
say "the engine did not answer on $SOCK within ${WAIT}s; see $LOG"
tail -n 20 "$LOG" >&2 2>/dev/null || true
exit 1
