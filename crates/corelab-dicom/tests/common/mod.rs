//! Test support (helpers are test code: unwrap/expect/panic are fine here).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use corelab_dicom::deid::DeidContext;
use corelab_domain::deid_profile::DeidProfile;

/// The shared bench scripts (gen_corpus.py, scan_phi.py): $TEST_BENCH_DIR, else the first
/// `shared/bench` found walking up from the crate (the workspace keeps shared/ beside or above it).
pub fn bench_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("TEST_BENCH_DIR") {
        return Some(PathBuf::from(d));
    }
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        for cand in [dir.join("shared/bench"), dir.join("../shared/bench")] {
            if cand.join("gen_corpus.py").is_file() {
                return Some(cand);
            }
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Python with numpy and pydicom, or None. Under CI=true a missing prerequisite fails the test.
pub fn python_with_pydicom(test: &str) -> Option<(String, PathBuf)> {
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    let miss = |why: String| -> Option<(String, PathBuf)> {
        if ci {
            panic!("{test}: {why} (CI=true: install python3 with `pip install numpy pydicom`)");
        }
        eprintln!("SKIPPED {test}: {why}");
        None
    };
    let Some(bench) = bench_dir() else {
        return miss("shared/bench/gen_corpus.py not found (set TEST_BENCH_DIR)".into());
    };
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok =
        Command::new(&py).args(["-c", "import numpy, pydicom"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        return miss(format!("{py} with numpy and pydicom is not available"));
    }
    Some((py, bench))
}

pub fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().expect("spawn")
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "dcm") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

pub fn ctx(profile: DeidProfile, subject: &str, shift: Option<i32>) -> DeidContext {
    DeidContext {
        trial_secret: b"corelab test trial secret 0001".to_vec(),
        sponsor_name: "ACME ONCOLOGY".into(),
        protocol_id: "ACME-ONC-301".into(),
        protocol_name: Some("A phase 3 study".into()),
        site_id: "SITE01".into(),
        site_name: Some("Site one".into()),
        subject_id: subject.into(),
        time_point_id: Some("V1".into()),
        time_point_description: Some("Baseline".into()),
        date_shift_days: shift,
        profile,
    }
}
