#!/usr/bin/env bash
# THE test command: dependencies, a Docker engine and images, typecheck, unit and integration tests.
# Ends with ONE closing line `N passed, N failed` (the sum of both runs). A failed typecheck, engine
# start or image build counts as one failure each. Exit status non-zero on any failure.
set -u
cd "$(dirname "$0")/.." || exit 1

passed=0
failed=0
note() { echo "== $*"; }

# 1. dependencies (MOAT_SKIP_INSTALL=1 skips this step when node_modules is known to be fresh)
if [ "${MOAT_SKIP_INSTALL:-}" = 1 ]; then
  note "skipping npm install (MOAT_SKIP_INSTALL=1)"
elif [ -f package-lock.json ]; then
  note "npm ci"
  npm ci --no-audit --no-fund || { echo "npm ci failed"; failed=$((failed + 1)); }
else
  note "npm install (no lockfile)"
  npm install --no-audit --no-fund || { echo "npm install failed"; failed=$((failed + 1)); }
fi

# 2. engine and images (integration tests skip themselves when there is no engine; that counts as a failure here)
note "ensure dockerd"
engine_was_up=0
node -e 'require("http").get({ socketPath: "/var/run/docker.sock", path: "/_ping", timeout: 2000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on("error", () => process.exit(1))' 2>/dev/null && engine_was_up=1
if bash scripts/ensure-dockerd.sh; then
  # A dockerd this run started (none answered before) may be restarted by the dockerd-restart test;
  # a shared one that was already running never is.
  if [ "$engine_was_up" = 0 ] && [ -s /var/run/docker.pid ]; then
    export MOAT_TEST_DOCKERD_PID="$(cat /var/run/docker.pid)"
    note "this run started dockerd (pid $MOAT_TEST_DOCKERD_PID): the dockerd-restart test will run"
  fi
  note "build images"
  bash scripts/build-images.sh || { echo "image build failed"; failed=$((failed + 1)); }
else
  echo "no Docker engine: integration tests will skip"
  failed=$((failed + 1))
fi

# 3. typecheck
note "typecheck"
if ! npx tsc --noEmit -p .; then
  echo "typecheck failed"
  failed=$((failed + 1))
fi

# 4. tests. The per-run summary line of the reporter is captured and renamed, so that the closing line
#    printed at the end is the only `N passed, N failed` line of the whole output.
run_suite() { # label, time limit, args...
  local label=$1 limit=$2
  shift 2
  local out
  out=$(mktemp)
  # Bounded: a hung test must not eat CI's 90 minutes (killed runs print no summary and count as a failure).
  timeout --kill-after=30s "$limit" node scripts/run-tests.mjs "$@" 2>&1 | tee "$out" | sed -E "s/^([0-9]+) passed, ([0-9]+) failed$/[$label: \1 passed \/ \2 failed]/"
  local status=${PIPESTATUS[0]}
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
  rm -f "$out"
  if [ -n "$line" ]; then
    local p f
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
      echo "$label: runner exited with status $status"
      failed=$((failed + 1))
    fi
  else
    echo "$label: no summary line (runner exited with status $status)"
    failed=$((failed + 1))
  fi
}

note "unit tests"
if [ -d test/unit ]; then run_suite unit "${MOAT_UNIT_TIMEOUT:-20m}" test/unit; fi
note "integration tests"
if [ -d test/integration ] && find test/integration -name '*.test.ts' | grep -q .; then
  run_suite integration "${MOAT_INTEGRATION_TIMEOUT:-50m}" --test-concurrency=1 test/integration
else
  echo "no integration tests"
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
