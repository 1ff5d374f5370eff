#!/usr/bin/env bash
# The project's test command (README: `npm test`). On a fresh machine (Node 20, root) it installs everything the
# tests need — npm packages and the Debian 13 runtime (PostgreSQL 17 + pgvector, PgBouncer, exporters, Prometheus) —
# runs every test, refuses skipped tests and a run with no real-server test, then checks rendered/ for drift.
set -euo pipefail
cd "$(dirname "$0")/.."

# The rig mounts /proc, /sys and /dev/shm inside .cache/debian13-rootfs for its servers. Whatever happens, leave no
# mount in the checkout: a runner that deletes or archives it afterwards would otherwise walk into the host's /proc.
trap 'node bin/pgstack.js runtime --unmount >/dev/null 2>&1 || true' EXIT

echo "== npm ci"
npm ci --no-audit --no-fund

echo "== typecheck"
npx tsc --noEmit -p .

echo "== real-server runtime (native programs, or the Debian 13 root filesystem)"
node bin/pgstack.js runtime

echo "== tests (unit, Pulumi mocks, promtool, real servers)"
report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" </dev/null || status=$?
node scripts/test-summary.js "$report" || status=1
rm -f "$report"
if [ "$status" -ne 0 ]; then
  echo "tests failed (status $status)" >&2
  exit 1
fi

echo "== drift: rendered/ snapshots vs this commit"
node bin/pgstack.js drift

echo "== leftovers: nothing of ours may outlive the run"
node bin/pgstack.js runtime --check-clean
node bin/pgstack.js runtime --unmount
exit 0
