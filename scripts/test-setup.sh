#!/usr/bin/env bash
# `npm run test:setup`: what `npm test` needs besides node_modules, on a Debian or Ubuntu machine.
# Installs with apt-get only what is missing, and says what and why before it does:
#   redis-server  the Upstash-protocol tests run a real Redis behind an Upstash REST bridge (test/setup/redis.ts)
#   chromium      the dashboard test drives it through playwright-core (test/node/dashboard.test.ts)
#   python3       checks of the Modal app regional/modal/vllm_app.py (skipped without it)
# Run as root, or with sudo available. Used by .ci/run; the README's test command is
# `npm ci && npm run test:setup && npm test`. TEST_SETUP_DRY_RUN=1 only says what it would install;
# REDIS_SERVER and CHROMIUM_PATH name the binaries as the tests read them.
set -euo pipefail
cd "$(dirname "$0")/.."

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "✗ Node.js 20 or later is needed (found: $(node --version 2>/dev/null || echo none)); see https://nodejs.org/en/download" >&2
  exit 1
fi

missing=()
why=()
command -v "${REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || { missing+=(redis-server); why+=("redis-server: a real Redis for the Upstash-protocol tests"); }
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || { missing+=(chromium); why+=("chromium: the browser the dashboard test drives"); }
command -v python3 >/dev/null 2>&1 || { missing+=(python3); why+=("python3: compiles and inspects regional/modal/vllm_app.py"); }

if [ ${#missing[@]} -eq 0 ]; then
  echo "✓ redis-server, chromium and python3 are installed"
else
  if [ -n "${TEST_SETUP_DRY_RUN:-}" ]; then
    echo "would install with apt-get: ${missing[*]}"
    printf '    %s\n' "${why[@]}"
    exit 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "✗ missing: ${missing[*]}, and this is not a Debian/Ubuntu machine (no apt-get): install them with your package manager" >&2
    printf '    %s\n' "${why[@]}" >&2
    exit 1
  fi
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
      echo "✗ missing: ${missing[*]}; run this as root or install sudo" >&2
      exit 1
    fi
  fi
  echo "installing with apt-get: ${missing[*]}"
  printf '    %s\n' "${why[@]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "✓ installed: ${missing[*]}"
fi

[ -d node_modules ] || echo "node_modules is missing: npm ci"
echo "ready: npm test"
