//! The command line: `config show`, wrong values at start.

use std::process::Command;

use crate::support::corelab_bin;

#[test]
fn config_show_prints_the_effective_configuration_without_secrets() {
    let out = Command::new(corelab_bin())
        .args(["config", "show", "--http-listen", "127.0.0.1:9999"])
        .env("CORELAB_DATABASE_URL", "postgres://corelab:hunter2@db.example:5432/corelab")
        .env("CORELAB_ADMIN_PASSWORD", "Very-Secret-Admin-1")
        .env("CORELAB_DICOM_AE_TITLE", "MYLAB")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:9999\""), "{text}");
    assert!(text.contains("ae_title = \"MYLAB\""), "{text}");
    assert!(text.contains("postgres://corelab:REDACTED@db.example:5432/corelab"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("Very-Secret-Admin-1"), "{text}");
}

#[test]
fn a_wrong_value_stops_serve_with_key_value_and_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("corelab.toml"), "[dicom]\nlisten = \"everywhere\"\n").unwrap();
    let out = Command::new(corelab_bin())
        .args(["serve", "--config", "corelab.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dicom.listen"), "{err}");
    assert!(err.contains("everywhere"), "{err}");
    assert!(err.contains("0.0.0.0:11112"), "{err}");
    assert!(err.contains("corelab.toml"), "{err}");
    // Nothing was created: a refused start leaves no data behind.
    assert!(!dir.path().join("corelab-data").exists());
}

#[test]
fn an_unknown_environment_key_is_an_error_not_silently_ignored() {
    let out = Command::new(corelab_bin())
        .args(["config", "show"])
        .env("CORELAB_STORAGE_S3_ENDPIONT", "http://x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key storage.s3_endpiont"), "{err}");
    assert!(err.contains("s3_endpoint"), "{err}");
}
