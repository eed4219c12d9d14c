#!/usr/bin/env python3
"""What one durable write of an instance costs on a volume, before any DICOM work.

corelab acknowledges an instance only after its bytes and its index rows are durable. On local
storage that is a new file per instance (staged, linked under its content key, `fdatasync`, then an
`fsync` of its folder) beside an SQLite WAL commit (an overwrite of a few KiB, `fdatasync`). This
script times those file-system operations alone, on objects the size of the benchmark's CT
instances, so the ingest numbers can be read against the floor the volume sets:

    python3 bench/durable_floor.py --dir /mnt/benchfs/floor

Cases (each `--count` objects, one at a time, times per object in ms):
  new_file          corelab's blob path in one folder: write a new file, link it under another
                    name, fdatasync it, fsync the folder (corelab stages in a folder of its own and
                    links into one of 256 key folders; a quick check of that layout measured
                    within 0.2-0.4 ms of this, inside the run-to-run spread)
  wal_commit        overwrite 8 KiB of a pre-written 4 MiB file and fdatasync it (a WAL commit)
  new_file_and_wal  the two side by side in two threads, as ingest runs them
  prewritten        write the object over pre-written, flushed space and fdatasync (a pack file)
  fallocated        the same over posix_fallocate'd space (unwritten extents, as a fresh pack)
  journal           new file written but not flushed, a copy of it appended to a pre-written
                    journal and fdatasync'd, the WAL commit beside it, and a syncfs "checkpoint"
                    every 64 MiB in the background (the time column counts the object's own wait;
                    `wall` counts everything, checkpoints included)

Linux only (syncfs through ctypes). Nothing is kept: the folder (which must be empty or new) is
removed at the end.
"""

import argparse
import ctypes
import os
import shutil
import statistics
import threading
import time

LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


def timed(fn, count, finish=lambda: None):
    times = []
    start = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1000)
    finish()
    wall = (time.perf_counter() - start) * 1000 / count
    return times, wall


def prewrite(path, size):
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    zero = b"\0" * (1 << 20)
    for off in range(0, size, len(zero)):
        os.pwrite(fd, zero[: min(len(zero), size - off)], off)
    os.fsync(fd)
    return fd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="an empty folder on the volume to measure")
    ap.add_argument("--size", type=int, default=526 * 1024, help="object size in bytes (default: a 512x512 CT)")
    ap.add_argument("--count", type=int, default=300)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    if os.listdir(args.dir):
        raise SystemExit(f"{args.dir} is not empty")
    d, size, n = args.dir, args.size, args.count
    data = os.urandom(size)
    dfd = os.open(d, os.O_RDONLY)
    wal = prewrite(f"{d}/wal", 4 << 20)
    results = []

    def new_file(name):
        staged = f"{d}/{name}.part"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.write(fd, data)
        os.close(fd)
        os.link(staged, f"{d}/{name}")
        os.unlink(staged)
        return f"{d}/{name}"

    def flush_file(path):
        fd = os.open(path, os.O_RDONLY)
        os.fdatasync(fd)
        os.close(fd)
        os.fsync(dfd)

    def wal_commit(i):
        os.pwrite(wal, os.urandom(8192), (i * 8192) % (4 << 20))
        os.fdatasync(wal)

    def case_new_file(i):
        flush_file(new_file(f"a{i}"))

    def case_both(i):
        path = new_file(f"b{i}")
        t = threading.Thread(target=flush_file, args=(path,))
        t.start()
        wal_commit(i)
        t.join()

    slot = -(-size // 4096) * 4096
    pre = prewrite(f"{d}/pack", slot * n)
    fal = os.open(f"{d}/pack-fallocated", os.O_RDWR | os.O_CREAT)
    os.posix_fallocate(fal, 0, slot * n)
    os.fsync(fal)

    def case_pre(i):
        os.pwrite(pre, data, i * slot)
        os.fdatasync(pre)

    def case_fal(i):
        os.pwrite(fal, data, i * slot)
        os.fdatasync(fal)

    segment, segments = 64 << 20, 4
    journal = [prewrite(f"{d}/journal{k}", segment) for k in range(segments)]
    per_segment = segment // slot
    checkpoint = [None]

    def case_journal(i):
        path = new_file(f"j{i}")
        seg, off = journal[(i // per_segment) % segments], (i % per_segment) * slot

        def append():
            src = os.open(path, os.O_RDONLY)
            os.copy_file_range(src, seg, size, 0, off)
            os.close(src)
            os.fdatasync(seg)

        t = threading.Thread(target=append)
        t.start()
        wal_commit(i)
        t.join()
        if i % per_segment == per_segment - 1:
            if checkpoint[0]:
                checkpoint[0].join()
            checkpoint[0] = threading.Thread(target=lambda: LIBC.syncfs(dfd))
            checkpoint[0].start()

    cases = [
        ("new_file", case_new_file),
        ("wal_commit", wal_commit),
        ("new_file_and_wal", case_both),
        ("prewritten", case_pre),
        ("fallocated", case_fal),
        ("journal", case_journal),
    ]

    def last_checkpoint():
        if checkpoint[0]:
            checkpoint[0].join()
        LIBC.syncfs(dfd)

    for name, fn in cases:
        times, wall = timed(fn, n, last_checkpoint if name == "journal" else lambda: None)
        results.append((name, statistics.median(times), statistics.mean(times), sorted(times)[int(0.9 * n)], wall))
    print(f"{n} objects of {size} bytes in {d}; ms per object")
    print("| case | median | mean | p90 | wall |")
    print("|---|---|---|---|---|")
    for name, med, mean, p90, wall in results:
        print(f"| {name} | {med:.2f} | {mean:.2f} | {p90:.2f} | {wall:.2f} |")
    for fd in [wal, pre, fal, dfd, *journal]:
        os.close(fd)
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
