//! The ingest path on arbitrary bytes: read the head of a Part 10 stream, take its matching keys
//! and original facts, de-identify it. Must never panic, hang or allocate without bound; when it
//! succeeds, the output must be a readable DICOM file that de-identifies again.
#![no_main]

use corelab_dicom::deid::{DeidContext, StreamHead, read_object};
use corelab_domain::deid_profile::{DateHandling, DeidProfile};
use libfuzzer_sys::fuzz_target;

fn context() -> DeidContext {
    DeidContext {
        trial_secret: b"fuzz-trial-secret-0123456789".to_vec(),
        sponsor_name: "Fuzz Sponsor".into(),
        protocol_id: "FUZZ-001".into(),
        protocol_name: Some("Fuzzing".into()),
        site_id: "SITE01".into(),
        site_name: None,
        subject_id: "SITE01-0001".into(),
        time_point_id: Some("V1".into()),
        time_point_description: Some("Baseline".into()),
        date_shift_days: Some(-17),
        profile: DeidProfile { dates: DateHandling::Shift, max_shift_days: 365, ..DeidProfile::default() },
    }
}

fuzz_target!(|data: &[u8]| {
    let ctx = context();
    let Ok(head) = StreamHead::read(data) else { return };
    let _ = head.match_keys();
    let _ = head.original_facts();
    let mut out = Vec::new();
    if head.deidentify(&mut out, &ctx).is_ok() {
        let again = read_object(&out);
        assert!(again.is_ok(), "de-identified output does not parse: {:?}", again.err());
        let mut twice = Vec::new();
        let head = StreamHead::read(out.as_slice()).expect("output head reads");
        assert!(head.deidentify(&mut twice, &ctx).is_ok(), "output does not de-identify again");
    }
});
