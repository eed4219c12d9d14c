//! PHI leak test on the synthetic corpus with planted PHI, and robustness on pydicom's test files.
//!
//! Needs python3 with numpy and pydicom and shared/bench (gen_corpus.py, scan_phi.py). Without them
//! the tests print SKIPPED, except under CI=true where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::*;
use corelab_dicom::deid::{DeidContext, Outcome, deidentify_object, deidentify_stream, read_match_keys, read_object};
use corelab_domain::deid_profile::{DateHandling, DeidProfile};
use dicom_core::Tag;
use dicom_object::{FileDicomObject, InMemDicomObject};

fn text(o: &InMemDicomObject, t: Tag) -> Option<String> {
    o.get(t).and_then(|e| e.value().to_str().ok()).map(|s| s.trim_matches(|c: char| c == '\0' || c == ' ').to_string())
}

/// Both paths on one file; asserts they give the same bytes; returns the bytes and the object.
fn both_paths(input: &[u8], ctx: &DeidContext) -> (Vec<u8>, FileDicomObject<InMemDicomObject>) {
    let mut streamed = Vec::new();
    let r1 = deidentify_stream(input, &mut streamed, ctx).expect("stream path");
    let obj = read_object(input).expect("parse");
    let (out, r2) = deidentify_object(obj, ctx).expect("object path");
    let mut written = Vec::new();
    out.write_all(&mut written).expect("dicom-rs write_all");
    assert!(written == streamed, "object path and stream path differ ({} vs {} bytes)", written.len(), streamed.len());
    assert_eq!(r1, r2, "reports differ");
    (streamed, out)
}

fn gen_synthetic(py: &str, bench: &Path, out: &Path) {
    let o = run(Command::new(py).arg(bench.join("gen_corpus.py")).args(["synthetic"]).arg(out).args([
        "--preset",
        "small",
        "--seed",
        "1",
        "--mr",
        "--mr-slices",
        "2",
    ]));
    assert!(o.status.success(), "gen_corpus.py failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// Runs scan_phi.py; returns (exit code, last line, leaks from its JSON as (tag, keyword, vr, value count)).
fn scan(
    py: &str,
    bench: &Path,
    manifest: &Path,
    dir: &Path,
    json: &Path,
    mode: &[&str],
) -> (i32, String, Vec<serde_json::Value>) {
    let o = run(Command::new(py)
        .arg(bench.join("scan_phi.py"))
        .arg(manifest)
        .arg(dir)
        .arg("--json")
        .arg(json)
        .args(["--max-print", "50"])
        .args(mode));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let last = stdout.lines().last().unwrap_or("").to_string();
    let leaks = std::fs::read_to_string(json)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("leaks").cloned())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    if o.status.code() != Some(0) {
        eprintln!("{stdout}");
    }
    (o.status.code().unwrap_or(-1), last, leaks)
}

#[test]
fn synthetic_corpus_has_no_leaks_and_keeps_what_it_should() {
    let Some((py, bench)) = python_with_pydicom("synthetic_corpus_has_no_leaks") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    gen_synthetic(&py, &bench, &corpus);
    let manifest = corpus.join("phi_manifest.json");
    let files = files_under(&corpus);
    assert!(files.len() >= 50, "corpus too small: {}", files.len());

    // Run 1: the basic profile, nothing retained. Run 2: dates shifted. Run 3: every retain option.
    let retain_all = DeidProfile {
        dates: DateHandling::Keep,
        retain_patient_characteristics: true,
        retain_device_identity: true,
        retain_institution_identity: true,
        retain_safe_private: true,
        clean_descriptors: true,
        descriptor_allow_list: vec!["AX 1.25mm STD".into(), "AX T1 VIBE".into(), "CT CHEST*CONTRAST".into()],
        ..DeidProfile::default()
    };
    let shift = DeidProfile { dates: DateHandling::Shift, max_shift_days: 5000, ..DeidProfile::default() };
    let runs: [(&str, DeidProfile, Option<i32>); 3] =
        [("basic", DeidProfile::default(), None), ("shift", shift, Some(-4001)), ("retain", retain_all, None)];
    let mut subjects: HashMap<String, String> = HashMap::new();
    for (name, profile, days) in runs {
        let out_dir = tmp.path().join(format!("out-{name}"));
        for f in &files {
            let input = std::fs::read(f).unwrap();
            let keys = read_match_keys(input.as_slice()).unwrap();
            let pid = keys.patient_id.clone().unwrap();
            let n = subjects.len();
            let subject = subjects.entry(pid).or_insert_with(|| format!("SUBJ-{:03}", n + 1)).clone();
            let ctx = ctx(profile.clone(), &subject, days);
            let (bytes, out) = both_paths(&input, &ctx);
            let rel = f.strip_prefix(&corpus).unwrap();
            let dst = out_dir.join(format!("{}.dcm", rel.to_string_lossy().replace('/', "_")));
            std::fs::create_dir_all(&out_dir).unwrap();
            std::fs::write(&dst, &bytes).unwrap();

            // Kept: modality, geometry, pixels, acquisition parameters; written: trial attributes.
            let orig = read_object(&input).unwrap();
            for t in [
                Tag(0x0008, 0x0060), // Modality
                Tag(0x0008, 0x0016), // SOP Class UID
                Tag(0x0008, 0x0070), // Manufacturer
                Tag(0x0020, 0x0032), // Image Position (Patient)
                Tag(0x0020, 0x0037), // Image Orientation (Patient)
                Tag(0x0028, 0x0030), // Pixel Spacing
                Tag(0x0018, 0x0050), // Slice Thickness
                Tag(0x0028, 0x0010), // Rows
                Tag(0x0028, 0x0100), // Bits Allocated
                Tag(0x0020, 0x0013), // Instance Number
            ] {
                assert_eq!(text(&out, t), text(&orig, t), "{t} must be kept ({name})");
            }
            let po = orig.get(Tag(0x7FE0, 0x0010)).unwrap().value().to_bytes().unwrap().into_owned();
            let pn = out.get(Tag(0x7FE0, 0x0010)).unwrap().value().to_bytes().unwrap().into_owned();
            assert!(po == pn, "pixel data changed ({name})");
            assert_eq!(text(&out, Tag(0x0010, 0x0020)).as_deref(), Some(subject.as_str()));
            assert_eq!(text(&out, Tag(0x0010, 0x0010)).as_deref(), Some(subject.as_str()));
            assert_eq!(text(&out, Tag(0x0012, 0x0040)).as_deref(), Some(subject.as_str()));
            assert_eq!(text(&out, Tag(0x0012, 0x0062)).as_deref(), Some("YES"));
            assert_eq!(
                out.meta().media_storage_sop_instance_uid().trim_end_matches('\0'),
                text(&out, Tag(0x0008, 0x0018)).unwrap()
            );
            assert!(text(&out, Tag(0x0008, 0x0018)).unwrap().starts_with("2.25."));
            assert_eq!(out.meta().transfer_syntax(), orig.meta().transfer_syntax());
            assert!(out.get(Tag(0x0009, 0x0010)).is_none(), "unsafe private block removed");
            match name {
                "retain" => {
                    for t in [
                        Tag(0x0008, 0x0020),
                        Tag(0x0010, 0x1030),
                        Tag(0x0010, 0x0040),
                        Tag(0x0008, 0x0080),
                        Tag(0x0018, 0x1000),
                    ] {
                        assert_eq!(text(&out, t), text(&orig, t), "{t} kept by an option");
                    }
                    let sd = text(&orig, Tag(0x0008, 0x103E)).unwrap();
                    // planted series descriptions carry a token, so they are not allow-listed
                    assert!(out.get(Tag(0x0008, 0x103E)).is_none(), "{sd:?} is not on the allow-list");
                    assert_eq!(text(&out, Tag(0x0028, 0x0303)).as_deref(), Some("UNMODIFIED"));
                    assert_eq!(text(&out, Tag(0x0012, 0x0031)).as_deref(), Some("Site one"));
                }
                "shift" => {
                    let od = text(&orig, Tag(0x0008, 0x0020)).unwrap();
                    let nd = text(&out, Tag(0x0008, 0x0020)).unwrap();
                    assert_ne!(od, nd);
                    assert_eq!(nd.len(), 8);
                    assert_eq!(text(&out, Tag(0x0028, 0x0303)).as_deref(), Some("MODIFIED"));
                    assert_eq!(text(&out, Tag(0x0008, 0x0030)), text(&orig, Tag(0x0008, 0x0030)), "times of day kept");
                }
                _ => {
                    assert_eq!(text(&out, Tag(0x0008, 0x0020)).as_deref(), Some(""), "Study Date emptied (Z)");
                    assert!(out.get(Tag(0x0008, 0x0080)).is_none(), "Institution Name removed (type 3 in CT/MR)");
                    assert!(
                        out.get(Tag(0x0012, 0x0031))
                            .map(|e| e.value().to_str().unwrap().trim().is_empty())
                            .unwrap_or(true)
                    );
                    assert_eq!(text(&out, Tag(0x0028, 0x0303)).as_deref(), Some("REMOVED"));
                }
            }
        }
        // Only the values the enabled options keep are skipped; everything else is searched.
        let mode: &[&str] = match name {
            "retain" => &["--allow-option", "RetainLongFullDatesOpt,RetainPatCharsOpt,RetainDevIdOpt,RetainInstIdOpt"],
            _ => &["--strict"],
        };
        let (code, last, leaks) =
            scan(&py, &bench, &manifest, &out_dir, &tmp.path().join(format!("leaks-{name}.json")), mode);
        eprintln!("{name}: {last}");
        match name {
            "basic" => assert_eq!(code, 0, "leaks with the basic profile: {last}"),
            _ => {
                // Allowed only what an enabled option keeps by the table: times of day under Modified
                // Dates (C: kept), Device UID under Retain Device Identity (K).
                for l in &leaks {
                    let entries = l.get("entries").and_then(|v| v.as_array()).cloned().unwrap_or_default();
                    let explained = entries.iter().all(|e| {
                        let tag = e.get("tag").and_then(|v| v.as_str()).unwrap_or("");
                        let vr = e.get("vr").and_then(|v| v.as_str()).unwrap_or("");
                        (name == "shift" && vr == "TM") || (name == "retain" && tag == "(0018,1002)")
                    });
                    assert!(!entries.is_empty() && explained, "{name}: unexplained leak {l}");
                }
                assert!(last.contains("planted values"), "{last}");
            }
        }
    }
    // The raw corpus does leak (the scanner works).
    let (code, last, _) = scan(&py, &bench, &manifest, &corpus, &tmp.path().join("raw.json"), &["--strict"]);
    assert_eq!(code, 1, "raw corpus should leak: {last}");
}

#[test]
fn pydicom_test_files_deidentify_or_are_refused_cleanly() {
    let Some((py, bench)) = python_with_pydicom("pydicom_test_files") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("variety");
    let o = run(Command::new(&py).arg(bench.join("gen_corpus.py")).arg("testdata").arg(&dir));
    assert!(o.status.success(), "gen_corpus.py testdata failed: {}", String::from_utf8_lossy(&o.stderr));
    let files = files_under(&dir);
    assert!(files.len() > 100, "{} files", files.len());
    let ctx = ctx(DeidProfile::default(), "SUBJ-001", None);
    let (mut ok, mut refused) = (0, Vec::new());
    let mut ts_seen = std::collections::BTreeSet::new();
    for f in &files {
        let input = std::fs::read(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let mut out = Vec::new();
        match deidentify_stream(input.as_slice(), &mut out, &ctx) {
            Ok(report) => {
                ts_seen.insert(report.transfer_syntax.clone());
                // the object path must agree wherever dicom-rs can read the file
                if let Ok(obj) = read_object(&input) {
                    let (o2, r2) = deidentify_object(obj, &ctx).expect("object path");
                    let mut w = Vec::new();
                    o2.write_all(&mut w).unwrap();
                    assert!(w == out, "{name}: object and stream paths differ");
                    assert_eq!(r2, report, "{name}");
                }
                let back = read_object(&out).unwrap_or_else(|e| panic!("{name}: output does not parse: {e}"));
                assert_eq!(text(&back, Tag(0x0010, 0x0020)).as_deref(), Some("SUBJ-001"), "{name}");
                assert!(report.count(Tag(0x0010, 0x0020), Outcome::Written) == 1);
                ok += 1;
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty());
                // a refused file must also be refused (not half-handled) by the object path
                if let Ok(obj) = read_object(&input) {
                    assert!(
                        deidentify_object(obj, &ctx).is_err(),
                        "{name}: stream refused ({msg}) but object path accepted"
                    );
                }
                refused.push(format!("{name}: {msg}"));
            }
        }
    }
    eprintln!("variety corpus: {ok} de-identified, {} refused; transfer syntaxes: {ts_seen:?}", refused.len());
    for r in &refused {
        eprintln!("  refused {r}");
    }
    assert!(ok >= 130, "only {ok} of {} files de-identified", files.len());
    assert!(ts_seen.len() >= 10, "transfer syntaxes covered: {ts_seen:?}");
    for r in &refused {
        assert!(
            r.contains("truncated")
                || r.contains("malformed")
                || r.contains("not a DICOM")
                || r.contains("unsupported"),
            "{r}"
        );
    }
}
