#!/usr/bin/env python3
"""De-identification benchmark: `corelab deid` (1 and 2 jobs) against dicognito, pydicom/deid and
Orthanc's /studies/{id}/anonymize, side by side on the same synthetic corpora.

Measures per tool and corpus, --reps times (median [min-max]):
  * wall time and instances/s (Orthanc: only the anonymize calls; the corpus is loaded first);
  * CPU seconds (user + sys, all threads) and instances per CPU-second ("per core");
  * peak RSS of the tool's process (GNU time %M; Orthanc: VmHWM of the server, which includes
    loading the corpus; Orthanc's CPU is read from /proc around the anonymize calls);
  * on the small corpus, PHI leaks with scan_phi.py (distinct planted values found in the outputs).
And corelab's peak RSS on a corpus and on one with 4x the files of the same size, to show that
memory does not grow with the number of files.

Corpora (gen_corpus.py synthetic, PHI planted, manifest kept outside the corpus folder):
  small   --preset small --seed 1                                   48 files of 256x256 (6.7 MB)
  medium  --subjects 2 --visits 2 --slices 100 --rows 512 --cols 512  400 files of 512x512 (210 MB)
  x1      --subjects 4 --visits 2 --slices 50 --rows 256 --cols 256  400 files of 256x256
  x4      --subjects 16 --visits 2 --slices 50 --rows 256 --cols 256 1600 files of 256x256

Usage (from the repository root, after `cargo build --release -p corelab`):
  python3 bench/deid_bench.py --workdir /tmp/deid_bench [--reps 3] [--corpora small,medium,x1,x4]
      [--tools corelab1,corelab2,dicognito,deid,orthanc] [--bench-dir ../shared/bench]
      [--json results.json] [--md table.md]
Prerequisites: pip install dicognito==0.19.0 deid==0.4.13 pydicom numpy requests;
apt-get install orthanc. As root the whole run happens in a private network namespace
(unshare -n, only lo up) because Orthanc 1.10 cannot bind to loopback only; --no-netns to skip.

Internal mode used for the pydicom/deid runs: deid_bench.py _deid IN OUT
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORTHANC = "/usr/sbin/Orthanc"
GNU_TIME = "/usr/bin/time"
HTTP_PORT = 18043
BASE = f"http://127.0.0.1:{HTTP_PORT}"

CORPORA = {
    "small": ["--preset", "small"],
    "medium": ["--subjects", "2", "--visits", "2", "--slices", "100", "--rows", "512", "--cols", "512"],
    "x1": ["--subjects", "4", "--visits", "2", "--slices", "50", "--rows", "256", "--cols", "256"],
    "x4": ["--subjects", "16", "--visits", "2", "--slices", "50", "--rows", "256", "--cols", "256"],
}
# Which tools run on which corpus (the scaling corpora are for RSS against file count).
DEFAULT_TOOLS = {
    "small": ["corelab1", "corelab2", "dicognito", "deid", "orthanc"],
    "medium": ["corelab1", "corelab2", "dicognito", "deid", "orthanc"],
    "x1": ["corelab1", "corelab2", "dicognito"],
    "x4": ["corelab1", "corelab2", "dicognito"],
}


def find_bench_dir():
    d = REPO
    while True:
        for cand in (os.path.join(d, "shared", "bench"), os.path.join(d, "..", "shared", "bench")):
            if os.path.exists(os.path.join(cand, "gen_corpus.py")):
                return os.path.abspath(cand)
        if os.path.dirname(d) == d:
            return os.path.join(REPO, "..", "shared", "bench")
        d = os.path.dirname(d)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def summarize(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "values": xs}


def files_under(d):
    out = []
    for root, _, names in os.walk(d):
        out.extend(os.path.join(root, n) for n in names)
    return sorted(out)


def run_measured(cmd, out_path, err_path):
    """Runs cmd under GNU time; returns (wall s, CPU s = user + sys, peak RSS MB, returncode).
    GNU time reports the command's own maximum RSS (not the forking Python's)."""
    tfile = out_path + ".time"
    with open(out_path, "wb") as o, open(err_path, "wb") as e:
        t = time.perf_counter()
        rc = subprocess.call([GNU_TIME, "-o", tfile, "-f", "%U %S %M", *cmd], stdout=o, stderr=e)
        wall = time.perf_counter() - t
    with open(tfile) as f:
        user, sys_, rss_kb = f.read().split()[-3:]
    return wall, float(user) + float(sys_), int(rss_kb) / 1024.0, rc


def ensure_corpus(py, bench, wd, name):
    d = os.path.join(wd, "corpus_" + name)
    man = os.path.join(wd, f"corpus_{name}.phi.json")
    if not (os.path.isdir(d) and os.path.exists(man)):
        shutil.rmtree(d, ignore_errors=True)
        cmd = [py, os.path.join(bench, "gen_corpus.py"), "synthetic", d, *CORPORA[name], "--seed", "1",
               "--phi-manifest", man]
        log("generating", name, ":", " ".join(cmd))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    files = files_under(d)
    return d, man, len(files), sum(os.path.getsize(f) for f in files)


def warm(d):
    for f in files_under(d):
        with open(f, "rb") as fh:
            while fh.read(1 << 20):
                pass


# --- tools -----------------------------------------------------------------------------------

def tool_cmd(tool, a, corpus, out, charter, key):
    if tool.startswith("corelab"):
        jobs = tool[len("corelab"):]
        return [a.corelab, "deid", corpus, out, "--charter", charter, "--site", "101", "--subject", "101-001",
                "--key-file", key, "--jobs", jobs]
    if tool == "dicognito":
        return [a.python, "-m", "dicognito", "--quiet", "-o", out, corpus]
    if tool == "deid":
        return [a.python, os.path.abspath(__file__), "_deid", corpus, out]
    raise ValueError(tool)


def deid_worker(src, dst):
    """pydicom/deid with its default recipe, one file at a time (as `deid identifiers` does, but
    with unique output names: the CLI writes every file flat under its base name)."""
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers
    recipe = DeidRecipe()
    os.makedirs(dst, exist_ok=True)
    for i, f in enumerate(files_under(src)):
        ds = replace_identifiers([f], deid=recipe, save=False)[0]
        ds.save_as(os.path.join(dst, f"{i:06d}.dcm"))


def scan_leaks(a, man, dirs, extra=()):
    r = subprocess.run([a.python, os.path.join(a.bench_dir, "scan_phi.py"), man, *dirs, "--max-print", "0", *extra],
                       capture_output=True, text=True)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr
    m = re.match(r"(\d+) planted values, (\d+) leaks in (\d+) files \((\d+) distinct values leaked", last)
    leaked_by_tag = {}
    for line in r.stdout.splitlines():
        mm = re.match(r"(?:UID )?LEAK .*? \[(.*?)\] subject=", line)
        if mm:
            leaked_by_tag[mm.group(1)] = leaked_by_tag.get(mm.group(1), 0) + 1
    if not m:
        return {"error": last}
    return {"planted": int(m.group(1)), "leaks": int(m.group(2)), "files": int(m.group(3)),
            "distinct_leaked": int(m.group(4)), "last_line": last,
            "top_attributes": sorted(leaked_by_tag.items(), key=lambda kv: -kv[1])[:12]}


def bench_cli(tool, a, cname, corpus, man, nfiles, nbytes, charter, key, results, scan):
    walls, cpus, rsss = [], [], []
    cmd_shown = None
    for rep in range(a.reps):
        # Outputs stay until the end of the whole run: deleting thousands of files right before
        # the next run makes ext4 (here without a journal) search longer for free inodes, which
        # slowed whichever tool ran next by up to 3x.
        out = os.path.join(a.workdir, "out", f"{tool}_{cname}_{rep}")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cmd = tool_cmd(tool, a, corpus, out, charter, key)
        cmd_shown = " ".join(cmd).replace(a.workdir, "$WD").replace(REPO + "/", "")
        wall, cpu, rss, rc = run_measured(cmd, out + ".stdout", out + ".stderr")
        nout = len([f for f in files_under(out) if f.endswith(".dcm")]) if os.path.isdir(out) else 0
        if rc != 0 or nout != nfiles:
            with open(out + ".stderr", errors="replace") as fh:
                tail = fh.read()[-1500:]
            log(f"  {tool} [{cname}] rc={rc} outputs={nout}/{nfiles}\n{tail}")
        walls.append(wall)
        cpus.append(cpu)
        rsss.append(rss)
        log(f"  {tool} [{cname}] rep {rep + 1}: {wall:.2f}s {nfiles / wall:.1f} inst/s cpu {cpu:.2f}s "
            f"rss {rss:.1f} MB rc={rc} out={nout}")
        if scan and rep == 0:
            results.setdefault("leaks", {})[tool] = scan_leaks(a, man, [out])
            log(f"    leaks: {results['leaks'][tool].get('last_line')}")
    results.setdefault("runs", {}).setdefault(cname, {})[tool] = {
        "command": cmd_shown, "files": nfiles, "bytes": nbytes, "wall_s": summarize(walls),
        "inst_s": summarize([nfiles / w for w in walls]), "MB_s": summarize([nbytes / 1e6 / w for w in walls]),
        "cpu_s": summarize(cpus), "inst_per_cpu_s": summarize([nfiles / c for c in cpus if c > 0]),
        "peak_rss_MB": summarize(rsss)}


# --- Orthanc ---------------------------------------------------------------------------------

def start_orthanc(wd):
    import requests
    if os.path.exists(wd):
        shutil.rmtree(wd)
    os.makedirs(wd)
    cfg = {"Name": "DEID_BENCH", "StorageDirectory": os.path.join(wd, "storage"),
           "IndexDirectory": os.path.join(wd, "index"), "StorageCompression": False, "HttpPort": HTTP_PORT,
           "DicomServerEnabled": False, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
           "HttpCompressionEnabled": False}
    cpath = os.path.join(wd, "orthanc.json")
    with open(cpath, "w") as f:
        json.dump(cfg, f, indent=1)
    lf = open(os.path.join(wd, "orthanc.log"), "w")
    p = subprocess.Popen([ORTHANC, cpath], stdout=lf, stderr=subprocess.STDOUT)
    t = time.time()
    while time.time() - t < 60:
        try:
            if requests.get(BASE + "/system", timeout=2).status_code == 200:
                return p
        except Exception:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.2)
    stop(p)
    raise RuntimeError("Orthanc did not start; see " + os.path.join(wd, "orthanc.log"))


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cpu_ticks(pid):
    """utime + stime of a process and its threads, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def vm_hwm_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def bench_orthanc(a, cname, corpus, man, nfiles, nbytes, results, scan):
    import requests
    wd = os.path.join(a.workdir, "orthanc_" + cname)
    p = start_orthanc(wd)
    try:
        s = requests.Session()
        for f in files_under(corpus):
            with open(f, "rb") as fh:
                s.post(BASE + "/instances", data=fh.read(), headers={"Content-Type": "application/dicom"},
                       timeout=120).raise_for_status()
        studies = s.get(BASE + "/studies", timeout=60).json()
        version = s.get(BASE + "/system", timeout=10).json().get("Version")
        walls, cpus = [], []
        for rep in range(a.reps):
            c0 = cpu_ticks(p.pid)
            t = time.perf_counter()
            new = []
            for st in studies:
                r = s.post(f"{BASE}/studies/{st}/anonymize", json={"Synchronous": True}, timeout=900)
                r.raise_for_status()
                new.append(r.json()["ID"])
            wall = time.perf_counter() - t
            walls.append(wall)
            cpus.append((cpu_ticks(p.pid) - c0) / os.sysconf("SC_CLK_TCK"))
            count = sum(len(s.get(f"{BASE}/studies/{n}/instances", timeout=60).json()) for n in new)
            log(f"  orthanc [{cname}] rep {rep + 1}: {wall:.2f}s {count / wall:.1f} inst/s ({count} instances)")
            if scan and rep == 0:
                out = os.path.join(a.workdir, "out", f"orthanc_{cname}")
                os.makedirs(out)
                for n in new:
                    for inst in s.get(f"{BASE}/studies/{n}/instances", timeout=60).json():
                        data = s.get(f"{BASE}/instances/{inst['ID']}/file", timeout=60).content
                        with open(os.path.join(out, inst["ID"] + ".dcm"), "wb") as fh:
                            fh.write(data)
                results.setdefault("leaks", {})["orthanc"] = scan_leaks(a, man, [out])
                log(f"    leaks: {results['leaks']['orthanc'].get('last_line')}")
            for n in new:
                s.delete(f"{BASE}/studies/{n}", timeout=300)
        rss = vm_hwm_mb(p.pid)
    finally:
        stop(p)
        shutil.rmtree(wd, ignore_errors=True)
    results.setdefault("runs", {}).setdefault(cname, {})["orthanc"] = {
        "command": f"Orthanc {version}: POST /studies/{{id}}/anonymize {{\"Synchronous\":true}} for each study "
                   f"(corpus loaded with POST /instances first, not timed)",
        "files": nfiles, "bytes": nbytes, "wall_s": summarize(walls),
        "inst_s": summarize([nfiles / w for w in walls]), "MB_s": summarize([nbytes / 1e6 / w for w in walls]),
        "cpu_s": summarize(cpus), "inst_per_cpu_s": summarize([nfiles / c for c in cpus if c > 0]),
        "peak_rss_MB": summarize([rss])}


# --- report ----------------------------------------------------------------------------------

def machine():
    info = {"python": platform.python_version(), "kernel": platform.release(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            info["cpu"] = m.group(1) if m else "?"
        with open("/proc/meminfo") as f:
            info["mem_GiB"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    info["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
    vers = {}
    for mod in ["pydicom", "dicognito", "deid", "numpy"]:
        try:
            from importlib.metadata import version
            vers[mod] = version(mod)
        except Exception:
            vers[mod] = None
    info["versions"] = vers
    return info


def fmt(x, digits=0):
    return f"{x['median']:.{digits}f} [{x['min']:.{digits}f}–{x['max']:.{digits}f}]"


def markdown(results):
    rows = ["| corpus | tool | files | inst/s (wall) | MB/s | wall s | CPU s | inst per CPU-s | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for cname, tools in results.get("runs", {}).items():
        for tool, r in tools.items():
            rows.append(f"| {cname} | {tool} | {r['files']} | {fmt(r['inst_s'])} | {fmt(r['MB_s'], 1)} | "
                        f"{fmt(r['wall_s'], 2)} | {fmt(r['cpu_s'], 2)} | {fmt(r['inst_per_cpu_s'])} | "
                        f"{fmt(r['peak_rss_MB'], 1)} |")
    if results.get("leaks"):
        rows += ["", "| tool (small corpus) | distinct planted values leaked | leaks (value, file) |", "|---|---|---|"]
        for tool, l in results["leaks"].items():
            if "error" in l:
                rows.append(f"| {tool} | error: {l['error']} | |")
            else:
                rows.append(f"| {tool} | {l['distinct_leaked']} of {l['planted']} | {l['leaks']} |")
    rows += ["", "Commands:", ""]
    for cname, tools in results.get("runs", {}).items():
        for tool, r in tools.items():
            rows.append(f"- {cname} / {tool}: `{r['command']}`")
    return "\n".join(rows) + "\n"


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "_deid":
        deid_worker(sys.argv[2], sys.argv[3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/deid_bench")
    ap.add_argument("--bench-dir", default=os.environ.get("CORELAB_BENCH_DIR") or find_bench_dir(),
                    help="folder with gen_corpus.py and scan_phi.py (default: shared/bench found walking up)")
    ap.add_argument("--corelab", default=os.path.join(REPO, "target", "release", "corelab"))
    ap.add_argument("--charter", default=os.path.join(REPO, "charters", "oncology-ct-recist.toml"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--corpora", default="small,medium,x1,x4")
    ap.add_argument("--tools", default=None, help="comma list; default: per corpus (see DEFAULT_TOOLS)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--md", default=None)
    ap.add_argument("--no-netns", action="store_true")
    ap.add_argument("--keep-outputs", action="store_true", help="keep $WORKDIR/out (all tools' outputs)")
    a = ap.parse_args()
    # A developer's debugging switch, not a deployment setting: with it set, every library error
    # captures a stack trace, and dicom-rs ends each data set it reads with one (end of input).
    for var in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE"):
        os.environ.pop(var, None)
    a.workdir = os.path.abspath(a.workdir)
    a.bench_dir = os.path.abspath(a.bench_dir)
    a.corelab = os.path.abspath(a.corelab)

    if not a.no_netns and os.geteuid() == 0 and not os.environ.get("DEID_BENCH_IN_NETNS") and shutil.which("unshare"):
        env = dict(os.environ, DEID_BENCH_IN_NETNS="1")
        inner = " ".join(["ip link set lo up &&", *[shlex_quote(x) for x in [sys.executable, *sys.argv]]])
        return subprocess.call(["unshare", "-n", "sh", "-c", inner], env=env)

    os.makedirs(a.workdir, exist_ok=True)
    shutil.rmtree(os.path.join(a.workdir, "out"), ignore_errors=True)
    os.makedirs(os.path.join(a.workdir, "out"))
    subprocess.run(["sync"])
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    r = subprocess.run([a.corelab, "--version"], capture_output=True, text=True)
    results["machine"]["versions"]["corelab"] = r.stdout.strip()
    key = os.path.join(a.workdir, "bench.key")
    # A charter with the example's allow-list narrowed (see docs/performance.md): for the leak row.
    with open(a.charter) as f:
        text = f.read()
    tight = os.path.join(a.workdir, "charter-tight.toml")
    with open(tight, "w") as f:
        f.write(text.replace('["*PORTAL*", "*VENOUS*", "*PV*", "*LUNG*"]', '["*PORTAL*", "*VENOUS*"]'))

    for cname in a.corpora.split(","):
        corpus, man, nfiles, nbytes = ensure_corpus(a.python, a.bench_dir, a.workdir, cname)
        log(f"corpus {cname}: {nfiles} files, {nbytes / 1e6:.1f} MB; load {open('/proc/loadavg').read().split()[:3]}")
        results.setdefault("corpora", {})[cname] = {"files": nfiles, "bytes": nbytes, "gen_args": CORPORA[cname]}
        warm(corpus)
        tools = a.tools.split(",") if a.tools else DEFAULT_TOOLS[cname]
        scan = cname == "small"
        for tool in tools:
            if tool == "orthanc":
                bench_orthanc(a, cname, corpus, man, nfiles, nbytes, results, scan)
            else:
                bench_cli(tool, a, cname, corpus, man, nfiles, nbytes, a.charter, key, results, scan)
        if scan and any(t.startswith("corelab") for t in tools):
            out = os.path.join(a.workdir, "out", "corelab_tight")
            run_measured(tool_cmd("corelab2", a, corpus, out, tight, key), out + ".stdout", out + ".stderr")
            results["leaks"]["corelab (allow-list narrowed)"] = scan_leaks(a, man, [out])
            log(f"    leaks corelab tight: {results['leaks']['corelab (allow-list narrowed)'].get('last_line')}")
    results["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    if not a.keep_outputs:
        shutil.rmtree(os.path.join(a.workdir, "out"), ignore_errors=True)
    md = markdown(results)
    print(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    if a.md:
        with open(a.md, "w") as f:
            f.write(md)
    return 0


def shlex_quote(s):
    import shlex
    return shlex.quote(s)


if __name__ == "__main__":
    sys.exit(main())
