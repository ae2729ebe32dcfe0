#!/usr/bin/env bash
# Installs the official provider SDKs, pinned, into .sdk/ for the compatibility tests, and
# Playwright for the dashboard's browser test (it drives Debian's Chromium: see .ci/run).
# The tests look for .sdk/venv/bin/python and .sdk/node/node_modules; without them they skip,
# unless AUTHCAP_REQUIRE_SDK_TESTS=1 (set by .ci/run) makes a missing SDK a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .sdk
if [ ! -x .sdk/venv/bin/python ]; then
  python3 -m venv .sdk/venv
fi
.sdk/venv/bin/pip install --quiet --disable-pip-version-check \
  "multisafepay==3.1.0" "requests>=2,<3" "mercadopago==3.6.0" "standardwebhooks==1.1.0" \
  "playwright==1.64.1"
# Schemathesis, pinned, in a venv of its own (scripts/schemathesis.sh).
if [ ! -x .sdk/schemathesis/bin/python ]; then
  python3 -m venv .sdk/schemathesis
fi
.sdk/schemathesis/bin/pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
mkdir -p .sdk/node
if [ ! -f .sdk/node/package.json ]; then
  echo '{"name":"authcap-sdk-tests","private":true}' > .sdk/node/package.json
fi
npm install --silent --no-audit --no-fund --prefix .sdk/node \
  "mercadopago@3.6.1" "@multisafepay/api-wrapper@1.0.1"
