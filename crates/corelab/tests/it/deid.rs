//! `corelab deid`: the real binary on a synthetic corpus with planted PHI (gen_corpus.py), plus a
//! non-DICOM file, truncated copies and a duplicate; scan_phi.py on the outputs and the logs.
//!
//! The corpus tests need python3 with numpy and pydicom and the shared bench scripts
//! (`shared/bench`, or $TEST_BENCH_DIR); without them they print SKIPPED, except under CI=true
//! where they fail. The argument tests need nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::corelab_bin;

const EXAMPLE_CHARTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charters/oncology-ct-recist.toml");

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The shared bench scripts: $TEST_BENCH_DIR, else the first `shared/bench` walking up.
fn bench_dir() -> Option<PathBuf> {
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

/// (python, bench dir), or None after a notice; under CI=true a missing prerequisite fails.
fn python_and_bench(test: &str) -> Option<(String, PathBuf)> {
    let miss = |why: String| {
        assert!(!ci(), "{test}: {why} (CI=true: run scripts/test-deps.sh)");
        eprintln!("SKIPPED {test}: {why}");
        None
    };
    let Some(bench) = bench_dir() else {
        return miss("shared/bench/gen_corpus.py not found (set TEST_BENCH_DIR)".into());
    };
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py).args(["-c", "import numpy, pydicom"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        return miss(format!("{py} with numpy and pydicom is not available"));
    }
    Some((py, bench))
}

/// The small synthetic corpus (2 subjects x 2 visits x 12 CT slices, PHI planted) in `dir`, its
/// manifest beside it (not inside: the manifest is not a DICOM file).
fn gen_corpus(py: &str, bench: &Path, dir: &Path, manifest: &Path) {
    let o = Command::new(py)
        .arg(bench.join("gen_corpus.py"))
        .arg("synthetic")
        .arg(dir)
        .args(["--preset", "small", "--seed", "1", "--phi-manifest"])
        .arg(manifest)
        .output()
        .unwrap();
    assert!(o.status.success(), "gen_corpus.py: {}", String::from_utf8_lossy(&o.stderr));
}

/// The example charter with `edit` applied to its text.
fn charter_with(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(EXAMPLE_CHARTER).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// scan_phi.py options for what the example charter keeps (see the leak test).
const CHARTER_OPTIONS: &[&str] = &["--allow-option", "RetainPatCharsOpt,RetainLongFullDatesOpt"];

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn deid(cwd: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    let o: Output = Command::new(corelab_bin())
        .arg("deid")
        .args(args.iter().map(|a| a.as_ref()))
        .current_dir(cwd)
        .output()
        .unwrap();
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Every file under `dir` as (relative path, bytes).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// scan_phi.py on the folders: (exit code, last line).
fn scan(py: &str, bench: &Path, manifest: &Path, dirs: &[&Path], extra: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(py)
        .arg(bench.join("scan_phi.py"))
        .arg(manifest)
        .args(dirs)
        .args(["--max-print", "30"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    if o.status.code() != Some(0) {
        eprintln!("{stdout}{}", String::from_utf8_lossy(&o.stderr));
    }
    (o.status.code(), stdout.lines().last().unwrap_or_default().to_string())
}

/// Runs a Python snippet with pydicom; returns its stdout lines.
fn python(py: &str, code: &str, args: &[&Path]) -> Vec<String> {
    let o = Command::new(py).arg("-c").arg(code).args(args).output().unwrap();
    assert!(o.status.success(), "python: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
}

const STUDY_DATES: &str = r#"
import pydicom, pathlib, sys
dates = set()
for p in pathlib.Path(sys.argv[1]).rglob("*.dcm"):
    try:
        d = pydicom.dcmread(p, stop_before_pixels=True)
    except Exception:
        continue
    if "StudyDate" in d and d.StudyDate:
        dates.add(d.StudyDate)
print("\n".join(sorted(dates)))
"#;

#[test]
fn deid_folder_leaks_no_phi_refuses_broken_files_and_repeats_byte_for_byte() {
    let Some((py, bench)) = python_and_bench("deid_folder_leaks_no_phi") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let manifest = tmp.path().join("phi_manifest.json");
    gen_corpus(&py, &bench, &input, &manifest);
    let corpus_files = tree(&input).len();
    assert_eq!(corpus_files, 48, "the small preset has 2 x 2 x 12 files");
    // A non-DICOM file, a copy truncated in its header, one truncated in its pixels, a duplicate.
    let (first_rel, first) = tree(&input).into_iter().next().unwrap();
    std::fs::write(input.join("notes.txt"), "scanned on the 3rd, see the paper form\n").unwrap();
    std::fs::create_dir_all(input.join("broken")).unwrap();
    std::fs::write(input.join("broken/header-cut.dcm"), &first[..3000]).unwrap();
    std::fs::write(input.join("broken/pixels-cut.dcm"), &first[..first.len() - 5000]).unwrap();
    std::fs::write(input.join("broken/copy.dcm"), &first).unwrap();
    // An instance that declares burned-in text: written, and flagged.
    std::fs::create_dir_all(input.join("extra7")).unwrap();
    python(
        &py,
        r#"
import pydicom, sys
d = pydicom.dcmread(sys.argv[1])
d.BurnedInAnnotation = "YES"
d.SOPInstanceUID = d.SOPInstanceUID + ".7"
d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
d.save_as(sys.argv[2])
"#,
        &[&input.join(&first_rel), &input.join("extra7/img-w.dcm")],
    );
    let charter = charter_with(tmp.path(), "charter.toml", |t| t);
    let key = tmp.path().join("trial.key");
    let out1 = tmp.path().join("out1");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();

    let args = |out: &Path, key: &Path| -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec![input.clone().into(), out.to_path_buf().into()];
        for (k, val) in [("--charter", charter.as_os_str()), ("--key-file", key.as_os_str())] {
            v.push(k.into());
            v.push(val.into());
        }
        v.extend(["--site", "101", "--subject", "101-001", "--jobs", "2"].map(std::ffi::OsString::from));
        v
    };
    let a1 = args(&out1, &key);
    let r1 = deid(tmp.path(), &a1.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect::<Vec<_>>());
    std::fs::write(logs.join("run1.log"), format!("{}{}", r1.stdout, r1.stderr)).unwrap();
    let all = format!("{}\n{}", r1.stdout, r1.stderr);
    assert_eq!(r1.code, Some(1), "refused files make the exit code 1: {all}");
    assert!(r1.stdout.contains("written:  49"), "{all}");
    assert!(r1.stdout.contains("refused:  4"), "{all}");
    assert!(r1.stdout.contains("flagged for burned-in PHI (check the pixels before use): 1"), "{all}");
    assert!(r1.stdout.contains("    extra7/img-w.dcm -> 101-001/2.25."), "{all}");
    assert!(r1.stdout.contains(".dcm: Burned In Annotation is YES"), "{all}");
    assert!(r1.stderr.contains("created a new trial key"), "{all}");
    // Each refusal names the file (relative to IN) and the problem.
    assert!(r1.stdout.contains("notes.txt: not a DICOM Part 10 file"), "{all}");
    assert!(r1.stdout.contains("broken/header-cut.dcm: truncated"), "{all}");
    assert!(r1.stdout.contains("broken/pixels-cut.dcm: truncated"), "{all}");
    assert_eq!(all.matches("another input file has the same SOP Instance UID").count(), 2, "{all}");
    let dup_named = all.contains("broken/copy.dcm: another input") || all.contains(&format!("{first_rel}: another"));
    assert!(dup_named, "{all}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Outputs: OUT/<subject>/<study>/<series>/<sop>.dcm with new UIDs, the report, nothing else.
    let t1 = tree(&out1);
    let dcm: Vec<&String> = t1.keys().filter(|k| k.ends_with(".dcm")).collect();
    assert_eq!(dcm.len(), 49);
    assert_eq!(t1.len(), 50, "49 instances and the report, no temporary files: {:?}", t1.keys());
    for k in &dcm {
        let parts: Vec<&str> = k.split('/').collect();
        assert_eq!(parts.len(), 4, "{k}");
        assert_eq!(parts[0], "101-001");
        assert!(parts[1..].iter().all(|p| p.starts_with("2.25.")), "{k}");
    }
    let studies: std::collections::BTreeSet<&str> = dcm.iter().map(|k| k.split('/').nth(1).unwrap()).collect();
    assert_eq!(studies.len(), 4, "one folder per study");

    // The report: every input by index, no input names, engine reports for written files.
    let report_text = String::from_utf8(t1["deid-report.json"].clone()).unwrap();
    for name in ["notes.txt", "header-cut", "copy.dcm", "img-w", "extra7", "IM0000", "MRN", "/in"] {
        assert!(!report_text.contains(name), "the report holds input name {name:?}");
    }
    let report: serde_json::Value = serde_json::from_str(&report_text).unwrap();
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 53);
    let mut indexes: Vec<u64> = files.iter().map(|f| f["index"].as_u64().unwrap()).collect();
    indexes.sort();
    assert_eq!(indexes, (1..=53).collect::<Vec<u64>>());
    assert_eq!(report["format"], 2);
    let written: Vec<&serde_json::Value> = files.iter().filter(|f| f["status"] == "written").collect();
    assert_eq!(written.len(), 49);
    // Each file points at its engine report; each distinct report is there once.
    let deid_reports = report["deid_reports"].as_array().unwrap();
    let deid_of = |f: &serde_json::Value| &deid_reports[f["deid_report"].as_u64().unwrap() as usize];
    let distinct: std::collections::BTreeSet<String> = deid_reports.iter().map(|r| r.to_string()).collect();
    assert_eq!(distinct.len(), deid_reports.len(), "a report is listed twice");
    let used: std::collections::BTreeSet<u64> = written.iter().map(|f| f["deid_report"].as_u64().unwrap()).collect();
    assert_eq!(used.len(), deid_reports.len(), "every listed report is used");
    assert!(deid_reports.len() < written.len(), "identical reports are shared, not repeated");
    let flagged: Vec<&&serde_json::Value> =
        written.iter().filter(|f| !deid_of(f)["flags"].as_array().unwrap().is_empty()).collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(deid_of(flagged[0])["flags"][0]["flag"], "burned_in_annotation_yes");
    for w in &written {
        assert!(t1.contains_key(w["output"].as_str().unwrap()));
        assert_eq!(w["subject_id"], "101-001");
        assert!(deid_of(w)["method_codes"].as_array().unwrap().iter().any(|c| c == "113107"));
        assert!(deid_of(w)["entries"].as_array().unwrap().len() > 10);
    }
    let summary = &report["summary"];
    assert_eq!((summary["written"].as_u64(), summary["refused"].as_u64()), (Some(49), Some(4)));
    assert_eq!(summary["flagged_burned_in"].as_u64(), Some(1));

    // No planted value in the outputs, the report or the console output. Values only the charter's
    // options may keep are skipped: patient characteristics, and times of day (kept when dates are
    // shifted; the dates themselves are checked below). Device and institution values are searched.
    let (code, last) = scan(&py, &bench, &manifest, &[&out1, &logs], CHARTER_OPTIONS);
    assert_eq!(code, Some(0), "{last}");
    assert!(last.contains(" 0 leaks"), "{last}");

    // Dates moved by the subject's shift derived from the key.
    let key_bytes = hex_decode(std::fs::read_to_string(&key).unwrap().trim());
    let shift = corelab::deid_cmd::date_shift_days(&key_bytes, "101-001", 365).unwrap();
    let shifted = |d: &str| {
        let date = chrono::NaiveDate::parse_from_str(d, "%Y%m%d").unwrap();
        (date + chrono::Duration::days(i64::from(shift))).format("%Y%m%d").to_string()
    };
    let before: Vec<String> = python(&py, STUDY_DATES, &[&input]).iter().map(|d| shifted(d)).collect();
    let after = python(&py, STUDY_DATES, &[&out1]);
    assert_eq!(before.len(), 4);
    assert_eq!(before, after, "study dates shifted by {shift} days");

    // Same key: byte-identical outputs (the report differs only in its times).
    let out2 = tmp.path().join("out2");
    let a2 = args(&out2, &key);
    let r2 = deid(tmp.path(), &a2.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect::<Vec<_>>());
    assert_eq!(r2.code, Some(1), "{}{}", r2.stdout, r2.stderr);
    assert!(!r2.stderr.contains("created a new trial key"));
    let t2 = tree(&out2);
    let strip = |t: &BTreeMap<String, Vec<u8>>| {
        t.iter().filter(|(k, _)| k.ends_with(".dcm")).map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>()
    };
    assert!(strip(&t1) == strip(&t2), "a second run with the same key differs");

    // Another key: other UIDs, so other names.
    let out3 = tmp.path().join("out3");
    let a3 = args(&out3, &tmp.path().join("other.key"));
    let r3 = deid(tmp.path(), &a3.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect::<Vec<_>>());
    assert_eq!(r3.code, Some(1));
    let t3 = tree(&out3);
    assert_eq!(t3.len(), 50);
    assert!(t3.keys().filter(|k| k.ends_with(".dcm")).all(|k| !t1.contains_key(k)));
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn deid_takes_the_subject_from_the_file_only_when_it_follows_the_pattern() {
    let Some((py, bench)) = python_and_bench("deid_takes_the_subject_from_the_file") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let manifest = tmp.path().join("phi_manifest.json");
    gen_corpus(&py, &bench, &input, &manifest);
    // The corpus's subjects are SITE01-0001 and SITE02-0002: a charter with those sites.
    let charter = charter_with(tmp.path(), "charter.toml", |t| {
        t.replacen("id = \"101\"", "id = \"SITE01\"", 1)
            .replacen("id = \"102\"", "id = \"SITE02\"", 1)
            .replace("id_pattern = \"{site}-{nnn}\"", "id_pattern = \"{site}-{nnnn}\"")
    });
    let out = tmp.path().join("out");
    let r = deid(
        tmp.path(),
        &[&input, &out, &"--charter", &charter, &"--site", &"SITE01", &"--timepoint", &"W8", &"--key-file", &"k.key"],
    );
    let all = format!("{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.code, Some(1), "{all}");
    assert!(r.stdout.contains("written:  24"), "{all}");
    assert!(r.stdout.contains("refused:  24"), "{all}");
    assert!(
        all.contains("its Clinical Trial Subject ID (0012,0040) does not follow the charter's subject ID pattern {site}-{nnnn} for site SITE01; give the subject with --subject"),
        "{all}"
    );
    // The file's own (non-matching) value is never printed.
    assert!(!all.contains("SITE02-0002"), "{all}");
    let t = tree(&out);
    assert!(t.keys().filter(|k| k.ends_with(".dcm")).all(|k| k.starts_with("SITE01-0001/")));
    let (code, last) = scan(&py, &bench, &manifest, &[&out], CHARTER_OPTIONS);
    assert_eq!(code, Some(0), "{last}");
    let values = python(
        &py,
        r#"
import pydicom, pathlib, sys
seen = set()
for p in pathlib.Path(sys.argv[1]).rglob("*.dcm"):
    d = pydicom.dcmread(p, stop_before_pixels=True)
    seen.add((d.ClinicalTrialSubjectID, d.PatientID, d.ClinicalTrialSiteID, d.ClinicalTrialTimePointID,
              p.stem == d.SOPInstanceUID == d.file_meta.MediaStorageSOPInstanceUID))
print(sorted(seen))
"#,
        &[&out],
    );
    assert_eq!(values, vec!["[('SITE01-0001', 'SITE01-0001', 'SITE01', 'W8', True)]".to_string()]);
}

#[test]
fn deid_with_a_broken_charter_exits_2_naming_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let charter = charter_with(tmp.path(), "broken.toml", |t| {
        t.replace("max_shift_days = 365", "max_shift_days = \"a year\"").replace("[qc]", "[qc]\nspeed = \"fast\"")
    });
    let text = std::fs::read_to_string(&charter).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    std::fs::write(tmp.path().join("x.dcm"), b"not dicom").unwrap();
    let out = tmp.path().join("out");
    let r = deid(tmp.path(), &[&"x.dcm", &out, &"--charter", &charter, &"--site", &"101", &"--subject", &"101-001"]);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    let shift_line = format!("{}:{}:", charter.display(), line_of("max_shift_days"));
    let qc_line = format!("{}:{}:", charter.display(), line_of("speed = "));
    let err = &r.stderr;
    assert!(
        err.lines().any(|l| l.starts_with(&shift_line) && l.contains(": deidentification.max_shift_days: ")),
        "{err}"
    );
    assert!(err.lines().any(|l| l.starts_with(&qc_line) && l.contains("qc.speed") && l.contains("(hint: ")), "{err}");
    assert!(err.contains("nothing was de-identified"), "{err}");
    assert!(!out.exists(), "nothing is created when the charter is broken");
    assert!(!tmp.path().join("corelab-deid.key").exists());
}

#[test]
fn deid_refuses_bad_arguments_before_writing_and_names_refused_files() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(input.join("a")).unwrap();
    std::fs::write(input.join("a/readme.txt"), b"hello").unwrap();
    // A media directory is skipped by its standard name, without counting as refused.
    std::fs::write(input.join("DICOMDIR"), b"not read").unwrap();
    let out = tmp.path().join("out");
    let base = |extra: &[&str]| {
        let mut v: Vec<String> = vec![
            "in".into(),
            "out".into(),
            "--charter".into(),
            EXAMPLE_CHARTER.into(),
            "--key-file".into(),
            "k".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let v = base(extra);
        deid(tmp.path(), &v.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>).collect::<Vec<_>>())
    };

    let r = run(&["--site", "999"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("site \"999\" is not in the charter; its sites are: 101, 102, 201"), "{}", r.stderr);

    let r = run(&["--site", "101", "--subject", "102-001"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("subject ID \"102-001\" does not follow the charter's subject ID pattern {site}-{nnn} for site 101, e.g. 101-001"),
        "{}",
        r.stderr
    );

    let r = run(&["--site", "101", "--subject", "101-001", "--timepoint", "W9"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("time point \"W9\" is not a visit of the charter; its visit IDs are: BL, W8, W16"),
        "{}",
        r.stderr
    );
    assert!(!out.exists() && !tmp.path().join("k").exists(), "nothing is written before the checks pass");

    // A folder of non-DICOM files: refused by name, exit 1, an empty output tree with the report.
    let r = run(&["--site", "101", "--subject", "101-001", "--timepoint", "W8"]);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("a/readme.txt: not a DICOM Part 10 file"), "{}", r.stdout);
    assert!(r.stdout.contains("written:  0"));
    assert!(r.stdout.contains("refused:  1"), "{}", r.stdout);
    assert!(r.stdout.contains("skipped:  1"), "{}", r.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("deid-report.json")).unwrap()).unwrap();
    let mut statuses: Vec<(u64, String)> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["index"].as_u64().unwrap(), f["status"].as_str().unwrap().to_string()))
        .collect();
    statuses.sort();
    // Sorted walk: "DICOMDIR" sorts before "a/readme.txt".
    assert_eq!(statuses, vec![(1, "skipped".to_string()), (2, "refused".to_string())]);

    // OUT must be new or empty.
    let r = run(&["--site", "101", "--subject", "101-001"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);

    // OUT inside IN is refused (the walk would read the outputs back).
    let v = ["in", "in/out", "--charter", EXAMPLE_CHARTER, "--key-file", "k", "--site", "101", "--subject", "101-001"];
    let r = deid(tmp.path(), &v.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>).collect::<Vec<_>>());
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("is inside the input"), "{}", r.stderr);
}
