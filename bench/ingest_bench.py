#!/usr/bin/env python3
"""Ingest benchmark: corelab against Orthanc and dcmtk storescp, side by side in one run.

The clients are the shared bench scripts (`ingest_bench.py`: dcmtk storescu over 1 or N associations,
STOW-RS with `requests`); Orthanc and storescp are started by the shared `run_anchors.py` exactly as
in its README; corelab is started here, fresh for every repetition, on its embedded default (SQLite +
local files) with de-identification, indexing and durable acknowledgement on.

    python3 bench/ingest_bench.py --corpus /tmp/c_1g --shared ../shared/bench --reps 3 \
        --corelab target/release/corelab --out /tmp/ingest_bench

The corpus must hold one subject (`gen_corpus.py synthetic OUT --subjects 1 --visits 10 --slices 200
--rows 512 --cols 512 --seed 1`: 2000 CT files of 512x512, about 1 GB), so that every instance
files into a visit of the benchmark trial rather than the inbox.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PASSWORD = "bench-Password-123"
HTTP, DIMSE = 18080, 11113
BASE = f"http://127.0.0.1:{HTTP}"


def log(*a):
    print(time.strftime("[%H:%M:%S]"), *a, file=sys.stderr, flush=True)


def peak_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    """User + system CPU time of a process so far (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def first_file(corpus):
    for root, dirs, files in os.walk(corpus):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".dcm"):
                return os.path.join(root, f)
    raise SystemExit(f"no .dcm file under {corpus}")


def corpus_subject(corpus):
    import pydicom

    # The anchor is the earliest study date (the baseline visit); one file per series folder is enough.
    dates, ds = [], None
    for root, _, files in os.walk(corpus):
        dcm = sorted(f for f in files if f.endswith(".dcm"))
        if dcm:
            ds = pydicom.dcmread(os.path.join(root, dcm[0]), stop_before_pixels=True)
            dates.append(ds.StudyDate)
    if ds is None:
        raise SystemExit(f"no .dcm file under {corpus}")
    d = min(dates)
    return ds.ClinicalTrialSiteID, ds.ClinicalTrialSubjectID, f"{d[:4]}-{d[4:6]}-{d[6:]}"


def bench_charter(site):
    """The test fixture charter, with the benchmark client's AE title added to the subject's site and a
    visit every 8 weeks (the corpus's schedule)."""
    text = open(os.path.join(ROOT, "crates/corelab/tests/it/fixtures/corpus-trial.toml")).read()
    text = text.replace(f'ae_titles = ["{site}_CT"]', f'ae_titles = ["{site}_CT", "BENCHSCU"]')
    for k in range(3, 11):
        text += (
            f'\n[[visits]]\nid = "V{k}"\nlabel = "Week {8 * (k - 1)}"\nday = {56 * (k - 1)}\n'
            f'window = {{ minus_days = 14, plus_days = 14 }}\nimaging = ["CT_CAP"]\n'
        )
    return text


class Corelab:
    def __init__(self, binary, workdir, prefix=""):
        self.dir = tempfile.mkdtemp(prefix="corelab_", dir=workdir)
        env = dict(os.environ)
        env.update(
            CORELAB_DATA_DIR=self.dir,
            CORELAB_HTTP_LISTEN=f"127.0.0.1:{HTTP}",
            CORELAB_DICOM_LISTEN=f"127.0.0.1:{DIMSE}",
            CORELAB_ADMIN_PASSWORD=PASSWORD,
            CORELAB_DICOM_ROUTING_REFRESH_SECONDS="1",
            CORELAB_LOG_LEVEL="warn",
        )
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        cmd = prefix.split() + [binary, "serve"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(f"{BASE}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"corelab did not start; see {self.log.name}")
            time.sleep(0.1)

    def setup(self, corpus):
        site, subject, anchor = corpus_subject(corpus)
        s = requests.Session()
        ok = lambda r, code: r if r.status_code == code else sys.exit(f"{r.request.url}: {r.status_code} {r.text}")
        ok(s.post(f"{BASE}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}), 200)
        trial = ok(s.post(f"{BASE}/api/v1/trials", json={"charter": bench_charter(site)}), 201).json()["id"]
        with open(first_file(corpus), "rb") as f:
            ok(s.post(f"{BASE}/api/v1/trials/{trial}/sites/{site}/qualification/scans", data=f.read()), 201)
        ok(
            s.post(
                f"{BASE}/api/v1/trials/{trial}/sites/{site}/qualification/decision",
                json={"approve": True, "username": "admin", "password": PASSWORD},
            ),
            200,
        )
        body = {"site_id": site, "subject_id": subject, "anchor_date": anchor}
        ok(s.post(f"{BASE}/api/v1/trials/{trial}/subjects", json=body), 201)
        user = {"username": "benchsite", "display_name": "bench site", "password": PASSWORD}
        uid = ok(s.post(f"{BASE}/api/v1/users", json=user), 201).json()["user"]["id"]
        grant = {"user_id": uid, "role": "site_user", "site_id": site}
        ok(s.post(f"{BASE}/api/v1/trials/{trial}/grants", json=grant), 201)
        u = requests.Session()
        ok(u.post(f"{BASE}/api/v1/auth/login", json={"username": "benchsite", "password": PASSWORD}), 200)
        tok = {"name": "bench", "trial_id": trial, "role": "site_user", "site_id": site, "expires_in_days": 1}
        self.token = ok(u.post(f"{BASE}/api/v1/tokens", json=tok), 201).json()["secret"]
        time.sleep(2)  # the DIMSE routing snapshot picks up the new trial

    def counts(self):
        db = sqlite3.connect(f"file:{self.dir}/corelab.db?mode=ro", uri=True)
        inst = db.execute("SELECT count(*) FROM instances").fetchone()[0]
        inbox = db.execute("SELECT count(*) FROM inbox").fetchone()[0]
        db.close()
        return inst, inbox

    def stop(self):
        rss = peak_rss_mb(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rss


STAGE = re.compile(r'^corelab_ingest_stage_seconds_(sum|count)\{source="(\w+)",stage="(\w+)"\} (\S+)$')


def stage_means_ms():
    """Mean milliseconds per instance in each ingest stage, from corelab's /metrics."""
    acc = {}
    for line in requests.get(f"{BASE}/metrics", timeout=10).text.splitlines():
        m = STAGE.match(line)
        if m:
            acc.setdefault(m.group(3), {})[m.group(1)] = float(m.group(4))
    order = ["header", "match", "deidentify", "blob_flush", "index", "store_and_index"]
    means = {k: 1000 * v["sum"] / v["count"] for k, v in acc.items() if v.get("count")}
    return dict(sorted(means.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def client(shared, corpus, mode, extra):
    cmd = [sys.executable, os.path.join(shared, "ingest_bench.py"), "--corpus", corpus, "--json", "--mode", mode]
    out = subprocess.run(cmd + extra, capture_output=True, text=True, timeout=1800)
    line = [l for l in out.stdout.splitlines() if l.startswith("JSON ")]
    if not line:
        raise SystemExit(f"ingest_bench failed: {out.stdout}\n{out.stderr}")
    return json.loads(line[-1][5:])


CORELAB_MODES = {
    "dimse1": ("storescu", ["--port", str(DIMSE), "--aec", "ACMEONC301", "--tcp-nodelay", "1", "--assoc", "1"]),
    "dimseN": ("storescu", ["--port", str(DIMSE), "--aec", "ACMEONC301", "--tcp-nodelay", "1", "--assoc", "4"]),
    "dimse1nagle": ("storescu", ["--port", str(DIMSE), "--aec", "ACMEONC301", "--tcp-nodelay", "0", "--assoc", "1"]),
    "stow1": ("stow", ["--url", BASE, "--stow-path", "/dicomweb/studies", "--batch", "25", "--workers", "1"]),
    "stowN": ("stow", ["--url", BASE, "--stow-path", "/dicomweb/studies", "--batch", "25", "--workers", "4"]),
}


def run_corelab(a, mode, rep):
    kind, extra = CORELAB_MODES[mode]
    c = Corelab(a.corelab, a.out, a.server_prefix)
    try:
        c.setup(a.corpus)
        cpu0 = cpu_seconds(c.proc.pid)
        args = list(extra)
        if kind == "stow":
            # The shared client speaks HTTP Basic; corelab takes an API token as its password.
            args += ["--user", f"token:{c.token}"]
        r = client(a.shared, a.corpus, kind, args)
        inst, inbox = c.counts()
        cpu1 = cpu_seconds(c.proc.pid)
        stages = stage_means_ms()
    finally:
        rss = c.stop()
    cpu = f", server CPU {(cpu1 - cpu0) * 1000 / max(inst, 1):.2f} ms/inst" if None not in (cpu0, cpu1) else ""
    log(f"corelab {mode} rep {rep}: {r['inst_s']:.0f} inst/s, {inst} indexed, {inbox} in inbox, RSS {rss:.0f} MB{cpu}")
    log("  mean ms per instance by stage: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    return dict(inst_s=r["inst_s"], MB_s=r["MB_s"], rss_mb=rss, note=f"{inst} indexed, {inbox} in inbox")


def run_reference(a, what, mode, rep):
    """One repetition of one scenario of the shared run_anchors.py (fresh server, fresh storage)."""
    out = os.path.join(a.out, f"anchor_{what}_{mode}_{rep}.json")
    cmd = [
        sys.executable, os.path.join(a.shared, "run_anchors.py"), "--corpus", f"bench={a.corpus}",
        "--out", out, "--reps", "1", "--workdir", os.path.join(a.out, "anchors"),
    ]
    if what == "storescp":
        cmd += ["--only", "storescp", "--storescp-variants", mode]
    else:
        cmd += ["--only", "orthanc", "--orthanc-modes", mode]
    if a.no_netns:
        cmd.append("--no-netns")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res = json.load(open(out))
    key = next(k for k in res if k.startswith(("orthanc_", "storescp")))
    r = res[key]
    rss = (r.get("orthanc_peak_rss_MB") or r.get("server_peak_rss_MB") or {}).get("median")
    v = dict(inst_s=r["inst_s"]["median"], MB_s=r["MB_s"]["median"], rss_mb=rss, note=key)
    log(f"{what} {mode} rep {rep}: {v['inst_s']:.0f} inst/s, RSS {rss or 0:.0f} MB")
    return v


def fmt(vals, key, digits=0):
    xs = [v[key] for v in vals if v.get(key) is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.{digits}f}"
    return f"{statistics.median(xs):.{digits}f} [{min(xs):.{digits}f}-{max(xs):.{digits}f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "bench"))
    ap.add_argument("--corelab", default=os.path.join(ROOT, "target", "release", "corelab"))
    ap.add_argument("--out", default="/tmp/ingest_bench")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", default="dimse1,dimseN,dimse1nagle,stow1,stowN")
    ap.add_argument("--no-reference", action="store_true", help="corelab only")
    ap.add_argument("--no-netns", action="store_true", help="passed to run_anchors.py")
    ap.add_argument("--server-prefix", default="", help="run corelab under this command (e.g. 'perf record -g -o F')")
    a = ap.parse_args()
    # A developer's debugging switch, not a deployment setting: with it set, every library error
    # captures a stack trace, and dicom-rs ends each data set it reads with one (end of input).
    for var in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE"):
        os.environ.pop(var, None)
    os.makedirs(a.out, exist_ok=True)
    rows = {}  # (target, mode) -> [result per repetition]
    # Interleaved: every repetition runs each mode on corelab and then on Orthanc (and storescp once),
    # so a change in the machine's load hits both alike.
    for rep in range(a.reps):
        for mode in a.modes.split(","):
            rows.setdefault(("corelab", mode), []).append(run_corelab(a, mode, rep))
            if not a.no_reference:
                rows.setdefault(("Orthanc", mode), []).append(run_reference(a, "orthanc", mode, rep))
        if not a.no_reference:
            rows.setdefault(("storescp", "dimse1"), []).append(run_reference(a, "storescp", "nodelay", rep))
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump({f"{t}/{m}": v for (t, m), v in rows.items()}, f, indent=1)
    print("| mode | target | inst/s | MB/s | peak RSS MB | ratio corelab / Orthanc |")
    print("|---|---|---|---|---|---|")
    for mode in a.modes.split(","):
        for target in ("corelab", "Orthanc", "storescp"):
            vals = rows.get((target, mode))
            if not vals:
                continue
            ratio = ""
            if target == "corelab" and ("Orthanc", mode) in rows:
                o = statistics.median(v["inst_s"] for v in rows[("Orthanc", mode)])
                ratio = f"{statistics.median(v['inst_s'] for v in vals) / o:.2f}"
            print(f"| {mode} | {target} | {fmt(vals, 'inst_s')} | {fmt(vals, 'MB_s')} | {fmt(vals, 'rss_mb')} | {ratio} |")


if __name__ == "__main__":
    main()
