#!/usr/bin/env bash
# Builds the reader workstation (web/viewer: Cornerstone3D bundled with vite) into web/viewer/dist,
# which `corelab serve` serves under /viewer/ (docs/viewer.md, docs/adr/0004-reader-workstation-bundle.md).
# Does nothing when dist is newer than the sources, the vite config and the lock file.
# Needs Node.js >= 20.19 and npm; packages come exactly as web/viewer/package-lock.json pins them.
set -euo pipefail
cd "$(dirname "$0")/../web/viewer"

stamp=dist/.vite/manifest.json
if [ -f "$stamp" ] && [ "${1:-}" != "--force" ]; then
  newer=$(find src vite.config.js package.json package-lock.json -newer "$stamp" -print -quit)
  if [ -z "$newer" ]; then
    echo "build-viewer: web/viewer/dist is up to date"
    exit 0
  fi
fi

if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
  echo "build-viewer: the workstation bundle needs Node.js >= 20.19 (vite 7), found $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
if [ ! -d node_modules/@cornerstonejs/core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "build-viewer: npm ci in web/viewer"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "build-viewer: vite build into web/viewer/dist"
# vite warns about Node built-ins the codecs mention but never call in a browser; keep the log short.
npx --no-install vite build --logLevel warn 2>&1 | grep -v 'has been externalized for browser compatibility' || true
test -f "$stamp" || { echo "build-viewer: vite produced no manifest" >&2; exit 1; }
echo "build-viewer: done ($(du -sh dist | cut -f1))"
