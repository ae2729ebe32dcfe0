#!/usr/bin/env bash
# Runs Schemathesis (pinned, installed by scripts/install-sdks.sh) against the native API of a
# freshly started `authcap serve` on a temporary SQLite database: every check, stateful links,
# a fixed seed, a bounded number of examples. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
st=.sdk/schemathesis/bin/st
[ -x "$st" ] || { echo "schemathesis is not installed: run scripts/install-sdks.sh" >&2; exit 1; }
binary=target/debug/authcap
[ -x "$binary" ] || cargo build --quiet --bin authcap
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
AUTHCAP_LOG=warn "$binary" serve --listen 127.0.0.1:0 --database "sqlite://$work/authcap.db" \
  --failed-authentications-per-minute 1000000 > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  grep -q "^listening on " "$work/serve.log" && break
  sleep 0.1
done
base=$(sed -n 's/^listening on //p' "$work/serve.log")
secret=$(sed -n 's/^  secret_key: //p' "$work/serve.log")
[ -n "$base" ] && [ -n "$secret" ] || { cat "$work/serve.log" >&2; exit 1; }
"$st" --config-file scripts/schemathesis.toml run "$base/openapi.json" \
  --header "Authorization: Bearer $secret" \
  --checks all --phases examples,coverage,fuzzing,stateful \
  --max-examples "${AUTHCAP_SCHEMATHESIS_EXAMPLES:-50}" --seed 20261202 --no-color
