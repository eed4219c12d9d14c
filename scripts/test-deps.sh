#!/usr/bin/env bash
# Installs what corelab's tests drive: dcmtk (echoscu/storescu), PostgreSQL if none answers,
# and the Python clients (pydicom, pynetdicom, dicomweb-client, moto's S3 server).
# Safe to run again: it installs only what is missing.
set -euo pipefail

need_apt=()
# pynetdicom puts its own echoscu/storescu on PATH; the tests call dcmtk by its full path.
[ -x /usr/bin/echoscu ] && [ -x /usr/bin/storescu ] || need_apt+=(dcmtk)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql postgresql-client)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
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
if [ ${#py_missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${py_missing[*]} from PyPI"
  python3 -m pip install -q --disable-pip-version-check "${py_missing[@]}"
fi
