#!/usr/bin/env bash
# The README's test command: runs every test of corelab on SQLite + local files AND on
# PostgreSQL + S3 (a moto S3 server on a loopback port, started and stopped here).
#   TEST_PG_URL   admin URL of a PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres)
#   extra arguments go to `cargo test` (e.g. scripts/test.sh -p corelab-domain)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-deps.sh

# PostgreSQL: use the one that answers, else start the local cluster.
export TEST_PG_URL="${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! psql "$TEST_PG_URL" -Atqc 'select 1' >/dev/null 2>&1; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "test: starting the local PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    # Tests connect as postgres over TCP without a password, as on the CI machine.
    for i in $(seq 1 30); do psql "$TEST_PG_URL" -Atqc 'select 1' >/dev/null 2>&1 && break; sleep 1; done
  fi
fi
psql "$TEST_PG_URL" -Atqc 'select 1' >/dev/null || { echo "test: PostgreSQL at $TEST_PG_URL does not answer" >&2; exit 1; }
# Databases left by earlier runs (each test creates its own).
for db in $(psql "$TEST_PG_URL" -Atqc "select datname from pg_database where datname like 'corelab_t_%'"); do
  psql "$TEST_PG_URL" -qc "drop database if exists \"$db\"" >/dev/null
done

# S3: a moto server on a free loopback port, with one bucket.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
logdir=$(mktemp -d)
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$logdir/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; rm -rf "$logdir"' EXIT
for i in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.2; done
export TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export TEST_S3_BUCKET=corelab-test
curl -fsS -X PUT "$TEST_S3_ENDPOINT/$TEST_S3_BUCKET" >/dev/null
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1

# The shared bench scripts (gen_corpus.py, scan_phi.py) sit beside or above the workspace; a clone
# made elsewhere (e.g. `git clone . /tmp/ci-check`) finds them beside the repository it came from.
# (TEST_, not CORELAB_: corelab's configuration refuses CORELAB_ variables it does not know.)
if [ -z "${TEST_BENCH_DIR:-}" ]; then
  origin=$(git config --get remote.origin.url 2>/dev/null || true)
  for cand in shared/bench ../shared/bench ../../shared/bench "$origin/../shared/bench" "$origin/../../shared/bench"; do
    if [ -f "$cand/gen_corpus.py" ]; then
      TEST_BENCH_DIR=$(cd "$cand" && pwd)
      export TEST_BENCH_DIR
      break
    fi
  done
fi

echo "test: SQLite + local files, and PostgreSQL ($TEST_PG_URL) + S3 ($TEST_S3_ENDPOINT)"
cargo test --workspace "$@"
