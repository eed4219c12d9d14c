#!/usr/bin/env bash
# Installs what corelab's tests drive: dcmtk (echoscu/storescu), PostgreSQL if none answers,
# the Python clients (pydicom, pynetdicom, dicomweb-client, moto's S3 server), and for the browser
# test of the pages Debian's chromium plus web/e2e's npm packages (playwright-core, axe-core).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# pynetdicom puts its own echoscu/storescu on PATH; the tests call dcmtk by its full path.
[ -x /usr/bin/echoscu ] && [ -x /usr/bin/storescu ] || need_apt+=(dcmtk)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql postgresql-client)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# script(1) runs `corelab upload` on a pseudo-terminal in the gateway tests.
[ -x /usr/bin/script ] || need_apt+=(util-linux)
# The browser test (tests/it/ui.rs) drives /usr/bin/chromium; a font so pages render text.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || need_apt+=(fonts-dejavu-core)
# The DICOMweb comparison (tests/it/dicomweb_read.rs) runs Orthanc with its DICOMweb plugin.
[ -x /usr/sbin/Orthanc ] || need_apt+=(orthanc)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need_apt+=(orthanc-dicomweb)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: missing ${need_apt[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "test-deps: installing ${need_apt[*]} from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

py_missing=()
python3 -c "import pydicom" 2>/dev/null || py_missing+=("pydicom==3.0.2")
python3 -c "import pynetdicom" 2>/dev/null || py_missing+=("pynetdicom==3.0.4")
python3 -c "import dicomweb_client" 2>/dev/null || py_missing+=("dicomweb-client==0.61.2")
python3 -c "import numpy" 2>/dev/null || py_missing+=("numpy")
python3 -c "import moto.server, flask, flask_cors" 2>/dev/null || py_missing+=("moto[server]")
# SDTM XPORT files are read back by an independent reader.
python3 -c "import pyreadstat, pandas" 2>/dev/null || py_missing+=("pyreadstat==1.3.7" "pandas")
if [ ${#py_missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${py_missing[*]} from PyPI"
  python3 -m pip install -q --disable-pip-version-check "${py_missing[@]}"
fi

# web/e2e: playwright-core and axe-core, exactly as package-lock.json pins them (needs Node.js >= 20).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "test-deps: the browser test needs Node.js >= 20, found $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
if [ ! -d web/e2e/node_modules/playwright-core ] || [ web/e2e/package-lock.json -nt web/e2e/node_modules/.package-lock.json ]; then
  echo "test-deps: npm ci in web/e2e"
  (cd web/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

# web/viewer: the reader workstation bundle (Cornerstone3D + vite), served by corelab under /viewer/
# and driven by the workstation browser test (tests/it/workstation.rs).
bash scripts/build-viewer.sh
