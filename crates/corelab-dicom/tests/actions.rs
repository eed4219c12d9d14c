//! One test per action code and option, on small hand-built instances, through both paths.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ctx;
use corelab_dicom::deid::{
    DeidContext, DeidError, DeidReport, Outcome, QcFlag, StreamHead, deidentify_bytes, deidentify_object,
    deidentify_stream, read_match_keys, read_object,
};
use corelab_domain::deid_profile::{DateHandling, DeidProfile, MaskRegion, PixelMask, SafePrivateTag};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::mem::InMemElement;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const SOP: &str = "1.2.826.0.1.3680043.8.498.100";
const STUDY: &str = "1.2.826.0.1.3680043.8.498.200";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.300";

fn s(tag: Tag, vr: VR, v: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn sq(tag: Tag, items: Vec<Vec<InMemElement>>) -> InMemElement {
    let items: Vec<InMemDicomObject> = items.into_iter().map(InMemDicomObject::from_element_iter).collect();
    DataElement::new(tag, VR::SQ, Value::from(DataSetSequence::new(items, Length::UNDEFINED)))
}

fn base(sop_class: &str) -> Vec<InMemElement> {
    vec![
        s(Tag(0x0008, 0x0016), VR::UI, sop_class),
        s(Tag(0x0008, 0x0018), VR::UI, SOP),
        s(Tag(0x0008, 0x0060), VR::CS, "CT"),
        s(Tag(0x0010, 0x0010), VR::PN, "DOE^JANE"),
        s(Tag(0x0010, 0x0020), VR::LO, "MRN0001"),
        s(Tag(0x0020, 0x000D), VR::UI, STUDY),
        s(Tag(0x0020, 0x000E), VR::UI, SERIES),
    ]
}

fn file_with(elems: Vec<InMemElement>, ts: &str) -> Vec<u8> {
    let obj = InMemDicomObject::from_element_iter(elems);
    let f: FileDicomObject<InMemDicomObject> =
        obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(ts).implementation_class_uid("1.2.3.4")).unwrap();
    let mut bytes = Vec::new();
    f.write_all(&mut bytes).unwrap();
    bytes
}

/// Runs both paths, checks they agree, returns the object and report.
fn run(elems: Vec<InMemElement>, ctx: &DeidContext) -> (InMemDicomObject, DeidReport) {
    run_ts(elems, ctx, "1.2.840.10008.1.2.1")
}

fn run_ts(elems: Vec<InMemElement>, ctx: &DeidContext, ts: &str) -> (InMemDicomObject, DeidReport) {
    let bytes = file_with(elems, ts);
    let (streamed, r1) = deidentify_bytes(&bytes, ctx).unwrap();
    let (obj, r2) = deidentify_object(read_object(&bytes).unwrap(), ctx).unwrap();
    let mut written = Vec::new();
    obj.write_all(&mut written).unwrap();
    assert!(written == streamed, "paths differ");
    assert_eq!(r1, r2);
    assert_eq!(&streamed[..128], &[0u8; 128][..], "preamble zeroed");
    (obj.into_inner(), r1)
}

fn val(o: &InMemDicomObject, t: Tag) -> Option<String> {
    o.get(t).map(|e| {
        e.value().to_str().map(|s| s.trim_matches(|c: char| c == '\0' || c == ' ').to_string()).unwrap_or_default()
    })
}

fn basic() -> DeidContext {
    ctx(DeidProfile::default(), "SUBJ-7", None)
}

#[test]
fn x_removes_z_empties_d_dummies_everywhere() {
    let mut e = base(CT);
    e.push(s(Tag(0x0010, 0x1040), VR::LO, "12 ELM ROAD")); // Patient's Address: X
    e.push(s(Tag(0x0008, 0x0050), VR::SH, "ACC123")); // Accession Number: Z
    e.push(s(Tag(0x0008, 0x0090), VR::PN, "REF^DOC")); // Referring Physician: Z
    // Person Identification Code Sequence is D: kept as a sequence, its free text replaced.
    e.push(sq(
        Tag(0x0040, 0x1101),
        vec![vec![s(Tag(0x0008, 0x0100), VR::SH, "C1"), s(Tag(0x0008, 0x0104), VR::LO, "Dr. Who")]],
    ));
    // Nested: an X attribute inside a kept sequence goes too.
    e.push(sq(
        Tag(0x0008, 0x1115), // Referenced Series Sequence (not listed: kept, processed)
        vec![vec![s(Tag(0x0020, 0x000E), VR::UI, SERIES), s(Tag(0x0010, 0x1040), VR::LO, "NESTED ADDR")]],
    ));
    let (o, r) = run(e, &basic());
    assert!(o.get(Tag(0x0010, 0x1040)).is_none());
    assert_eq!(val(&o, Tag(0x0008, 0x0050)).as_deref(), Some(""));
    assert_eq!(val(&o, Tag(0x0008, 0x0090)).as_deref(), Some(""));
    let pic = o.get(Tag(0x0040, 0x1101)).unwrap().value().items().unwrap()[0].clone();
    assert_eq!(val(&pic, Tag(0x0008, 0x0104)).as_deref(), Some("ANONYMIZED"));
    assert_eq!(val(&pic, Tag(0x0008, 0x0100)).as_deref(), Some("ANONYMIZED"));
    let rs = o.get(Tag(0x0008, 0x1115)).unwrap().value().items().unwrap()[0].clone();
    assert!(rs.get(Tag(0x0010, 0x1040)).is_none());
    assert_eq!(r.count(Tag(0x0010, 0x1040), Outcome::Removed), 2);
    assert_eq!(r.count(Tag(0x0008, 0x0050), Outcome::Emptied), 1);
    assert_eq!(r.count(Tag(0x0040, 0x1101), Outcome::Dummy), 1);
    // U: nested reference remapped to the same UID as the top level
    assert_eq!(val(&rs, Tag(0x0020, 0x000E)), val(&o, Tag(0x0020, 0x000E)));
    assert_ne!(val(&o, Tag(0x0020, 0x000E)).as_deref(), Some(SERIES));
    let json = serde_json::to_string(&r).unwrap();
    for phi in ["ELM ROAD", "ACC123", "REF^DOC", "Dr. Who", "DOE", "MRN0001", SOP, STUDY] {
        assert!(!json.contains(phi), "report leaks {phi}");
    }
}

#[test]
fn combined_codes_follow_iod_type() {
    // CT: Content Date Z/D is type 2 -> Z; Institution Name X/Z/D type 3 -> X; Acquisition Date X/Z -> X.
    let mut e = base(CT);
    e.push(s(Tag(0x0008, 0x0023), VR::DA, "20230101"));
    e.push(s(Tag(0x0008, 0x0080), VR::LO, "GENERAL HOSPITAL"));
    e.push(s(Tag(0x0008, 0x0022), VR::DA, "20230101"));
    e.push(sq(Tag(0x0008, 0x1140), vec![vec![s(Tag(0x0008, 0x1155), VR::UI, "1.2.3.999")]]));
    let (o, _) = run(e.clone(), &basic());
    assert_eq!(val(&o, Tag(0x0008, 0x0023)).as_deref(), Some(""));
    assert!(o.get(Tag(0x0008, 0x0080)).is_none());
    assert!(o.get(Tag(0x0008, 0x0022)).is_none());
    assert!(o.get(Tag(0x0008, 0x1140)).is_none(), "X/Z/U* type 3 in CT: removed");
    // Unknown IOD: the non-removing variant (D, U*).
    let mut e2 = e.clone();
    e2[0] = s(Tag(0x0008, 0x0016), VR::UI, "1.2.840.10008.5.1.4.1.1.88.22");
    let (o, r) = run(e2, &basic());
    assert_eq!(val(&o, Tag(0x0008, 0x0023)).as_deref(), Some("19000101"));
    assert_eq!(val(&o, Tag(0x0008, 0x0080)).as_deref(), Some("ANONYMIZED"));
    assert_eq!(val(&o, Tag(0x0008, 0x0022)).as_deref(), Some(""));
    let ris = o.get(Tag(0x0008, 0x1140)).unwrap().value().items().unwrap()[0].clone();
    let mapped = val(&ris, Tag(0x0008, 0x1155)).unwrap();
    assert!(mapped.starts_with("2.25."));
    assert!(r.entries.iter().any(|e| e.rule.contains("IOD type unknown")));
    // Enhanced CT: Device Serial Number type 1 -> D.
    let mut e3 = base("1.2.840.10008.5.1.4.1.1.2.1");
    e3.push(s(Tag(0x0018, 0x1000), VR::LO, "SN-42"));
    let (o, _) = run(e3, &basic());
    assert_eq!(val(&o, Tag(0x0018, 0x1000)).as_deref(), Some("ANONYMIZED"));
}

#[test]
fn uids_remapped_consistently_but_standard_uids_kept() {
    let mut e = base(CT);
    e.push(s(Tag(0x0020, 0x0052), VR::UI, "1.2.840.10008.1.4.1.1")); // a standard frame of reference
    e.push(sq(
        Tag(0x0008, 0x2112), // Source Image Sequence
        vec![vec![s(Tag(0x0008, 0x1150), VR::UI, CT), s(Tag(0x0008, 0x1155), VR::UI, SOP)]],
    ));
    let c = ctx(DeidProfile::default(), "SUBJ-7", None);
    let bytes = file_with(e.clone(), "1.2.840.10008.1.2.1");
    let (out, _) = deidentify_bytes(&bytes, &c).unwrap();
    let o = read_object(&out).unwrap();
    let new_sop = val(&o, Tag(0x0008, 0x0018)).unwrap();
    assert!(new_sop.starts_with("2.25.") && new_sop.len() <= 64);
    assert_eq!(o.meta().media_storage_sop_instance_uid().trim_end_matches('\0'), new_sop);
    assert_eq!(val(&o, Tag(0x0008, 0x0016)).as_deref(), Some(CT));
    assert_eq!(val(&o, Tag(0x0020, 0x0052)).as_deref(), Some("1.2.840.10008.1.4.1.1"));
    // Retain UIDs keeps them all.
    let keep = ctx(DeidProfile { retain_uids: true, ..DeidProfile::default() }, "SUBJ-7", None);
    let (o, r) = run(e, &keep);
    assert_eq!(val(&o, Tag(0x0008, 0x0018)).as_deref(), Some(SOP));
    assert!(r.method_codes.contains(&"113110".to_string()));
    // Another secret gives other UIDs.
    let mut other = c.clone();
    other.trial_secret = b"another trial secret 1234567890".to_vec();
    let (out2, _) = deidentify_bytes(&bytes, &other).unwrap();
    assert_ne!(val(&read_object(&out2).unwrap(), Tag(0x0008, 0x0018)).unwrap(), new_sop);
}

#[test]
fn dates_removed_kept_or_shifted() {
    let mut e = base(CT);
    e.push(s(Tag(0x0008, 0x0020), VR::DA, "20230315"));
    e.push(s(Tag(0x0008, 0x0030), VR::TM, "101500"));
    e.push(s(Tag(0x0008, 0x002A), VR::DT, "20230315101500.000000"));
    e.push(s(Tag(0x0010, 0x0030), VR::DA, "19600101")); // birth date: Z whatever the date option
    let (o, _) = run(e.clone(), &basic());
    assert_eq!(val(&o, Tag(0x0008, 0x0020)).as_deref(), Some(""));
    assert!(o.get(Tag(0x0008, 0x002A)).is_none());
    assert_eq!(val(&o, Tag(0x0028, 0x0303)).as_deref(), Some("REMOVED"));
    let keep = ctx(DeidProfile { dates: DateHandling::Keep, ..DeidProfile::default() }, "S", None);
    let (o, r) = run(e.clone(), &keep);
    assert_eq!(val(&o, Tag(0x0008, 0x0020)).as_deref(), Some("20230315"));
    assert_eq!(val(&o, Tag(0x0008, 0x002A)).as_deref(), Some("20230315101500.000000"));
    assert_eq!(val(&o, Tag(0x0010, 0x0030)).as_deref(), Some(""));
    assert!(r.method_codes.contains(&"113106".to_string()));
    let shift = ctx(DeidProfile { dates: DateHandling::Shift, ..DeidProfile::default() }, "S", Some(-20));
    let (o, r) = run(e, &shift);
    assert_eq!(val(&o, Tag(0x0008, 0x0020)).as_deref(), Some("20230223"));
    assert_eq!(val(&o, Tag(0x0008, 0x002A)).as_deref(), Some("20230223101500.000000"));
    assert_eq!(val(&o, Tag(0x0008, 0x0030)).as_deref(), Some("101500"));
    assert_eq!(val(&o, Tag(0x0010, 0x0030)).as_deref(), Some(""));
    assert_eq!(val(&o, Tag(0x0028, 0x0303)).as_deref(), Some("MODIFIED"));
    assert_eq!(r.dates_shifted, 2);
    assert!(r.method_codes.contains(&"113107".to_string()));
}

#[test]
fn context_is_checked() {
    let e = base(CT);
    let bytes = file_with(e, "1.2.840.10008.1.2.1");
    let no_shift = ctx(DeidProfile { dates: DateHandling::Shift, ..DeidProfile::default() }, "S", None);
    assert!(matches!(deidentify_bytes(&bytes, &no_shift), Err(DeidError::Context(_))));
    let too_far =
        ctx(DeidProfile { dates: DateHandling::Shift, max_shift_days: 10, ..DeidProfile::default() }, "S", Some(11));
    assert!(matches!(deidentify_bytes(&bytes, &too_far), Err(DeidError::Context(_))));
    let mut short = basic();
    short.trial_secret = b"short".to_vec();
    assert!(matches!(deidentify_bytes(&bytes, &short), Err(DeidError::Context(_))));
    let bad_subject = ctx(DeidProfile::default(), "A\\B", None);
    assert!(matches!(deidentify_bytes(&bytes, &bad_subject), Err(DeidError::Context(_))));
    assert!(!format!("{:?}", basic()).contains("corelab test trial secret"));
}

#[test]
fn retain_options_keep_their_columns() {
    let mut e = base(CT);
    e.push(s(Tag(0x0010, 0x0040), VR::CS, "F")); // sex: pat chars K
    e.push(s(Tag(0x0010, 0x1030), VR::DS, "70")); // weight: pat chars K
    e.push(s(Tag(0x0008, 0x1010), VR::SH, "STATION1")); // station: dev id K
    e.push(s(Tag(0x0018, 0x1000), VR::LO, "SN1")); // serial: dev id K
    e.push(s(Tag(0x0008, 0x0080), VR::LO, "HOSPITAL")); // institution: inst id K
    e.push(s(Tag(0x0012, 0x0031), VR::LO, "OLD SITE NAME"));
    let (o, _) = run(e.clone(), &basic());
    assert_eq!(val(&o, Tag(0x0010, 0x0040)).as_deref(), Some(""));
    for t in [Tag(0x0010, 0x1030), Tag(0x0008, 0x1010), Tag(0x0018, 0x1000), Tag(0x0008, 0x0080)] {
        assert!(o.get(t).is_none(), "{t} removed by basic");
    }
    assert_eq!(val(&o, Tag(0x0012, 0x0031)).as_deref(), Some(""), "site name emptied without Rtn Inst Id");
    let p = DeidProfile {
        retain_patient_characteristics: true,
        retain_device_identity: true,
        retain_institution_identity: true,
        ..DeidProfile::default()
    };
    let (o, r) = run(e, &ctx(p, "S", None));
    assert_eq!(val(&o, Tag(0x0010, 0x0040)).as_deref(), Some("F"));
    assert_eq!(val(&o, Tag(0x0010, 0x1030)).as_deref(), Some("70"));
    assert_eq!(val(&o, Tag(0x0008, 0x1010)).as_deref(), Some("STATION1"));
    assert_eq!(val(&o, Tag(0x0018, 0x1000)).as_deref(), Some("SN1"));
    assert_eq!(val(&o, Tag(0x0008, 0x0080)).as_deref(), Some("HOSPITAL"));
    assert_eq!(val(&o, Tag(0x0012, 0x0031)).as_deref(), Some("Site one"), "context site name written with Rtn Inst Id");
    assert!(r.kept_by_option >= 5);
    for code in ["113100", "113108", "113109", "113112"] {
        assert!(r.method_codes.contains(&code.to_string()));
    }
    let codes = o.get(Tag(0x0012, 0x0064)).unwrap().value().items().unwrap().len();
    assert_eq!(codes, 4);
}

#[test]
fn clean_descriptors_keep_only_allow_listed_values() {
    let mut e = base(CT);
    e.push(s(Tag(0x0008, 0x103E), VR::LO, "ax t1 post"));
    e.push(s(Tag(0x0008, 0x1030), VR::LO, "CT for JOHN SMITH"));
    e.push(s(Tag(0x0018, 0x1030), VR::LO, "PROTO-9")); // X/D, type 3 in CT: removed unless listed
    let p = DeidProfile {
        clean_descriptors: true,
        descriptor_allow_list: vec!["AX T1*".into(), "proto-9".into()],
        ..DeidProfile::default()
    };
    let (o, r) = run(e.clone(), &ctx(p, "S", None));
    assert_eq!(val(&o, Tag(0x0008, 0x103E)).as_deref(), Some("ax t1 post"));
    assert_eq!(val(&o, Tag(0x0018, 0x1030)).as_deref(), Some("PROTO-9"));
    assert!(o.get(Tag(0x0008, 0x1030)).is_none());
    assert!(r.method_codes.contains(&"113105".to_string()));
    let (o, _) = run(e, &basic());
    assert!(o.get(Tag(0x0008, 0x103E)).is_none(), "without the option descriptors go");
}

#[test]
fn private_attributes_removed_unless_safe() {
    let mut e = base(CT);
    e.push(s(Tag(0x0019, 0x0010), VR::LO, "SIEMENS MR HEADER"));
    e.push(DataElement::new(Tag(0x0019, 0x100C), VR::IS, PrimitiveValue::from("1000"))); // b-value: safe
    e.push(s(Tag(0x0019, 0x1001), VR::LO, "secret note"));
    e.push(s(Tag(0x0009, 0x0010), VR::LO, "ACME TRIAL PRIVATE 1.0"));
    e.push(s(Tag(0x0009, 0x1001), VR::LO, "DOE JANE"));
    e.push(s(Tag(0x0009, 0x1002), VR::SH, "KEEPME"));
    let (o, r) = run(e.clone(), &basic());
    assert!(o.iter().all(|el| el.tag().group() % 2 == 0), "no private attribute survives the basic profile");
    assert!(r.count(Tag(0x0019, 0x0010), Outcome::Removed) == 1);
    let p = DeidProfile {
        retain_safe_private: true,
        safe_private: vec![SafePrivateTag { creator: "ACME TRIAL PRIVATE 1.0".into(), group: 0x0009, element: 0x02 }],
        ..DeidProfile::default()
    };
    let (o, r) = run(e, &ctx(p, "S", None));
    assert_eq!(val(&o, Tag(0x0019, 0x100C)).as_deref(), Some("1000"));
    assert_eq!(val(&o, Tag(0x0019, 0x0010)).as_deref(), Some("SIEMENS MR HEADER"));
    assert!(o.get(Tag(0x0019, 0x1001)).is_none());
    assert_eq!(val(&o, Tag(0x0009, 0x1002)).as_deref(), Some("KEEPME"));
    assert!(o.get(Tag(0x0009, 0x1001)).is_none());
    assert!(r.method_codes.contains(&"113111".to_string()));
}

#[test]
fn graphics_signatures_icons_and_original_attributes_go() {
    let mut e = base(CT);
    e.push(DataElement::new(Tag(0x6000, 0x0010), VR::US, PrimitiveValue::from(4u16)));
    e.push(DataElement::new(Tag(0x6000, 0x3000), VR::OW, PrimitiveValue::U8([1u8, 2, 3, 4].as_slice().into())));
    e.push(DataElement::new(Tag(0x5000, 0x3000), VR::OW, PrimitiveValue::U8([1u8, 2].as_slice().into())));
    e.push(sq(
        Tag(0x0088, 0x0200),
        vec![vec![DataElement::new(Tag(0x0028, 0x0010), VR::US, PrimitiveValue::from(2u16))]],
    ));
    e.push(sq(Tag(0x0400, 0x0561), vec![vec![s(Tag(0x0010, 0x0010), VR::PN, "OLD^NAME")]]));
    e.push(sq(
        Tag(0xFFFA, 0xFFFA),
        vec![vec![DataElement::new(Tag(0x0400, 0x0015), VR::CS, PrimitiveValue::from("SHA1"))]],
    ));
    e.push(DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U8(vec![7u8; 32].into())));
    e.push(DataElement::new(Tag(0xFFFC, 0xFFFC), VR::OB, PrimitiveValue::U8([0u8; 8].as_slice().into())));
    e.push(DataElement::new(Tag(0x0008, 0x0000), VR::UL, PrimitiveValue::from(1234u32)));
    e.push(s(Tag(0x0002, 0x0016), VR::AE, "SITE_PACS"));
    let (o, r) = run(e, &basic());
    for t in [
        Tag(0x6000, 0x0010),
        Tag(0x6000, 0x3000),
        Tag(0x5000, 0x3000),
        Tag(0x0088, 0x0200),
        Tag(0x0400, 0x0561),
        Tag(0xFFFA, 0xFFFA),
        Tag(0xFFFC, 0xFFFC),
    ] {
        assert!(o.get(t).is_none(), "{t} removed");
    }
    for t in [Tag(0x0008, 0x0000), Tag(0x0002, 0x0016)] {
        assert!(o.get(t).is_none(), "{t} removed");
        assert_eq!(r.count(t, Outcome::Removed), 1, "{t} was in the input and was removed");
    }
    assert_eq!(o.get(Tag(0x7FE0, 0x0010)).unwrap().value().to_bytes().unwrap().as_ref(), &[7u8; 32][..]);
    assert_eq!(r.count(Tag(0xFFFA, 0xFFFA), Outcome::Removed), 1);
}

fn image(
    manufacturer: &str,
    rows: u16,
    cols: u16,
    spp: u16,
    frames: u32,
    pixels: Value<InMemDicomObject>,
) -> Vec<InMemElement> {
    let mut e = base("1.2.840.10008.5.1.4.1.1.6.1"); // US
    e[2] = s(Tag(0x0008, 0x0060), VR::CS, "US");
    e.push(s(Tag(0x0008, 0x0070), VR::LO, manufacturer));
    e.push(s(Tag(0x0008, 0x1090), VR::LO, "Vivid E95"));
    e.push(DataElement::new(Tag(0x0028, 0x0002), VR::US, PrimitiveValue::from(spp)));
    e.push(s(Tag(0x0028, 0x0004), VR::CS, if spp == 3 { "RGB" } else { "MONOCHROME2" }));
    if frames > 1 {
        e.push(s(Tag(0x0028, 0x0008), VR::IS, &frames.to_string()));
    }
    e.push(DataElement::new(Tag(0x0028, 0x0010), VR::US, PrimitiveValue::from(rows)));
    e.push(DataElement::new(Tag(0x0028, 0x0011), VR::US, PrimitiveValue::from(cols)));
    e.push(DataElement::new(Tag(0x0028, 0x0100), VR::US, PrimitiveValue::from(8u16)));
    e.push(DataElement::new(Tag(0x0028, 0x0101), VR::US, PrimitiveValue::from(8u16)));
    if spp == 3 {
        e.push(DataElement::new(Tag(0x0028, 0x0006), VR::US, PrimitiveValue::from(0u16)));
    }
    e.push(DataElement::new(Tag(0x7FE0, 0x0010), VR::OB, pixels));
    e
}

fn us_mask() -> DeidProfile {
    DeidProfile {
        pixel_masks: vec![PixelMask {
            manufacturer: "GE Healthcare".into(),
            model: Some("vivid".into()),
            rows: 4,
            columns: 6,
            regions: vec![MaskRegion { x: 0, y: 0, width: 6, height: 1 }],
        }],
        ..DeidProfile::default()
    }
}

#[test]
fn pixel_masks_blank_native_rgb_multiframe_and_flag_compressed() {
    let n = 4 * 6 * 3 * 2;
    let data: Vec<u8> = (0..n).map(|i| (i % 200 + 1) as u8).collect();
    let e = image("GE Healthcare", 4, 6, 3, 2, Value::from(PrimitiveValue::U8(data.clone().into())));
    let (o, r) = run(e, &ctx(us_mask(), "S", None));
    let px = o.get(Tag(0x7FE0, 0x0010)).unwrap().value().to_bytes().unwrap().into_owned();
    for frame in 0..2 {
        let f = &px[frame * 72..(frame + 1) * 72];
        assert!(f[..18].iter().all(|b| *b == 0), "first row blanked");
        assert_eq!(&f[18..], &data[frame * 72 + 18..(frame + 1) * 72], "rest untouched");
    }
    assert_eq!(val(&o, Tag(0x0028, 0x0301)).as_deref(), Some("NO"));
    assert!(r.method_codes.contains(&"113101".to_string()));
    assert_eq!((r.masked_regions, r.masked_frames), (1, 2));
    assert!(
        r.flags.iter().any(|f| matches!(f, QcFlag::BurnedInAnnotationUnknown { .. })),
        "US without (0028,0301) is flagged"
    );
    // Different manufacturer: no mask, flagged.
    let e = image("Other", 4, 6, 3, 2, Value::from(PrimitiveValue::U8(data.clone().into())));
    let (o, r) = run(e, &ctx(us_mask(), "S", None));
    assert_eq!(o.get(Tag(0x7FE0, 0x0010)).unwrap().value().to_bytes().unwrap().as_ref(), data.as_slice());
    assert!(!r.method_codes.contains(&"113101".to_string()));
    // Compressed data with a matching mask: not applied, flagged.
    let frag = Value::PixelSequence(PixelFragmentSequence::new(vec![], vec![vec![0xFFu8, 0xD8, 0xFF, 0xD9]]));
    let e = image("GE Healthcare", 4, 6, 3, 1, frag);
    let (o, r) = run_ts(e, &ctx(us_mask(), "S", None), "1.2.840.10008.1.2.4.50");
    assert!(
        r.flags.iter().any(|f| matches!(f, QcFlag::PixelMaskNotApplied { reason } if reason.contains("compressed")))
    );
    assert!(!r.method_codes.contains(&"113101".to_string()));
    assert!(o.get(Tag(0x0028, 0x0301)).is_none());
}

#[test]
fn burned_in_annotation_yes_is_flagged() {
    let mut e = base(CT);
    e.push(s(Tag(0x0028, 0x0301), VR::CS, "YES"));
    let (_, r) = run(e, &basic());
    assert_eq!(r.flags, vec![QcFlag::BurnedInAnnotationYes]);
}

#[test]
fn transfer_syntax_is_kept_for_implicit_big_endian_and_deflate() {
    for ts in ["1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"] {
        let mut e = base(CT);
        e.push(s(Tag(0x0010, 0x1040), VR::LO, "12 ELM ROAD"));
        e.push(DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U16(vec![1u16, 2, 3, 4].into())));
        let bytes = file_with(e.clone(), ts);
        let (out, r) = deidentify_bytes(&bytes, &basic()).unwrap();
        assert_eq!(r.transfer_syntax, ts);
        let o = read_object(&out).unwrap();
        assert_eq!(o.meta().transfer_syntax().trim_end_matches('\0'), ts);
        assert!(o.get(Tag(0x0010, 0x1040)).is_none());
        assert_eq!(o.get(Tag(0x7FE0, 0x0010)).unwrap().value().to_multi_int::<u16>().unwrap(), vec![1, 2, 3, 4]);
        run_ts(e, &basic(), ts);
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_no_output() {
    let c = basic();
    let mut sink = Vec::new();
    let err = deidentify_stream(&b"hello, not dicom"[..], &mut sink, &c).unwrap_err();
    assert!(matches!(err, DeidError::NotDicom(_)), "{err}");
    assert!(sink.is_empty());
    let mut junk = vec![0u8; 300];
    junk[128..132].copy_from_slice(b"ABCD");
    assert!(matches!(deidentify_bytes(&junk, &c), Err(DeidError::NotDicom(_))));

    let mut e = base(CT);
    e.push(s(Tag(0x0010, 0x1040), VR::LO, "12 ELM ROAD"));
    e.push(DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U8(vec![9u8; 64].into())));
    let good = file_with(e, "1.2.840.10008.1.2.1");
    // truncated inside the header
    let cut = &good[..good.len() - 64 - 12 - 10];
    let mut sink = Vec::new();
    let err = deidentify_stream(cut, &mut sink, &c).unwrap_err();
    assert!(matches!(err, DeidError::Truncated(_)), "{err}");
    assert!(sink.is_empty(), "nothing written for a broken header");
    // truncated inside the pixel data: error (the caller discards the partial output)
    let err = deidentify_bytes(&good[..good.len() - 5], &c).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    // wrong length: an element claims more bytes than the file has
    let pos = good.windows(4).position(|w| w == [0x10, 0x00, 0x40, 0x10]).unwrap();
    let mut bad = good.clone();
    bad[pos + 6..pos + 8].copy_from_slice(&0x7FF0u16.to_le_bytes());
    let err = deidentify_bytes(&bad, &c).unwrap_err();
    assert!(matches!(err, DeidError::Truncated(_) | DeidError::Malformed(_)), "{err}");
    // a broken sequence: an item holds a non-item tag where an item should start
    let mut e = base(CT);
    e.push(sq(Tag(0x0008, 0x1115), vec![vec![s(Tag(0x0020, 0x000E), VR::UI, SERIES)]]));
    let good = file_with(e, "1.2.840.10008.1.2.1");
    let pos = good.windows(4).position(|w| w == [0xFE, 0xFF, 0x00, 0xE0]).unwrap();
    let mut bad = good.clone();
    bad[pos..pos + 4].copy_from_slice(&[0x08, 0x00, 0x00, 0x01]);
    let mut sink = Vec::new();
    let err = deidentify_stream(bad.as_slice(), &mut sink, &c).unwrap_err();
    assert!(err.to_string().contains("broken sequence"), "{err}");
    assert!(sink.is_empty());
    assert!(read_match_keys(&bad[..200]).is_err());
}

#[test]
fn match_keys_are_read_before_deidentification_and_redacted() {
    let mut e = base(CT);
    e.push(s(Tag(0x0012, 0x0040), VR::LO, "SITE-0001"));
    e.push(s(Tag(0x0012, 0x0050), VR::LO, "V2"));
    e.push(s(Tag(0x0008, 0x0020), VR::DA, "20230315"));
    let bytes = file_with(e, "1.2.840.10008.1.2.1");
    let k = read_match_keys(bytes.as_slice()).unwrap();
    assert_eq!(k.patient_id.as_deref(), Some("MRN0001"));
    assert_eq!(k.clinical_trial_subject_id.as_deref(), Some("SITE-0001"));
    assert_eq!(k.clinical_trial_time_point_id.as_deref(), Some("V2"));
    assert_eq!(k.study_date.as_deref(), Some("20230315"));
    assert_eq!(k.sop_instance_uid.as_ref().map(|u| u.as_str()), Some(SOP));
    // One pass: read the head, match, then de-identify with the chosen context.
    let head = StreamHead::read(bytes.as_slice()).unwrap();
    assert_eq!(head.match_keys(), k);
    assert!(!format!("{head:?}").contains("MRN0001"));
    let c = ctx(DeidProfile::default(), k.clinical_trial_subject_id.as_deref().unwrap(), None);
    let mut one_pass = Vec::new();
    let r1 = head.deidentify(&mut one_pass, &c).unwrap();
    let (two_pass, r2) = deidentify_bytes(&bytes, &c).unwrap();
    assert!(one_pass == two_pass);
    assert_eq!(r1, r2);
    let dbg = format!("{k:?}");
    for phi in ["MRN0001", "SITE-0001", "20230315", SOP, "DOE"] {
        assert!(!dbg.contains(phi), "Debug shows {phi}");
    }
}

#[test]
fn input_without_preamble_gives_the_same_output() {
    let mut e = base(CT);
    e.push(DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U8(vec![3u8; 16].into())));
    let with = file_with(e, "1.2.840.10008.1.2.1");
    let without = &with[128..];
    let (a, _) = deidentify_bytes(&with, &basic()).unwrap();
    let (b, _) = deidentify_bytes(without, &basic()).unwrap();
    assert!(a == b);
    assert_eq!(&a[128..132], b"DICM");
}

#[test]
fn masks_16_bit_words_in_every_little_endian_syntax() {
    let mut e = base(CT);
    e.push(s(Tag(0x0008, 0x0070), VR::LO, "GE Healthcare"));
    e.push(s(Tag(0x0008, 0x1090), VR::LO, "Vivid E95"));
    for (g, el, v) in [(0x0028, 0x0002, 1u16), (0x0028, 0x0010, 4), (0x0028, 0x0011, 6), (0x0028, 0x0100, 16)] {
        e.push(DataElement::new(Tag(g, el), VR::US, PrimitiveValue::from(v)));
    }
    let words: Vec<u16> = (1..=24).map(|i| i * 1000).collect();
    e.push(DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U16(words.clone().into())));
    let p = ctx(us_mask(), "S", None);
    for ts in ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"] {
        let (o, r) = run_ts(e.clone(), &p, ts);
        let got = o.get(Tag(0x7FE0, 0x0010)).unwrap().value().to_multi_int::<u16>().unwrap();
        assert!(got[..6].iter().all(|w| *w == 0), "{ts}: first row blanked");
        assert_eq!(&got[6..], &words[6..], "{ts}");
        assert!(r.method_codes.contains(&"113101".to_string()));
    }
    // Big endian: refused and flagged, pixels untouched.
    let (o, r) = run_ts(e, &p, "1.2.840.10008.1.2.2");
    assert_eq!(o.get(Tag(0x7FE0, 0x0010)).unwrap().value().to_multi_int::<u16>().unwrap(), words);
    assert!(r.flags.iter().any(|f| matches!(f, QcFlag::PixelMaskNotApplied { .. })));
}

/// Found by the fuzz target: an Implementation Version Name with bytes outside ASCII (here 0xFF)
/// made output whose file meta group length was wrong, so the output did not parse. It is dropped.
#[test]
fn a_version_name_outside_ascii_is_dropped_and_the_output_parses() {
    let obj = InMemDicomObject::from_element_iter(base(CT));
    let f: FileDicomObject<InMemDicomObject> = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax("1.2.840.10008.1.2.1")
                .implementation_class_uid("1.2.3.4")
                .implementation_version_name("XXXSCANNER_1"),
        )
        .unwrap();
    let mut bytes = Vec::new();
    f.write_all(&mut bytes).unwrap();
    let at = bytes.windows(3).position(|w| w == b"XXX").unwrap();
    bytes[at..at + 3].copy_from_slice(&[0xFF; 3]);
    let (out, report) = deidentify_bytes(&bytes, &basic()).unwrap();
    let back = read_object(&out).expect("the de-identified output parses");
    assert_eq!(back.meta().implementation_version_name, None);
    assert!(
        report.entries.iter().any(|e| e.tag == "(0002,0013)" && e.outcome == Outcome::Removed),
        "the report says it was removed: {report:?}"
    );
    // And it de-identifies again.
    deidentify_bytes(&out, &basic()).unwrap();
}

/// Far more than any of the inputs below holds: what dicom-rs would reserve if it got to read it.
const CLAIMED: u32 = 0x1000_0000;

/// An explicit VR little endian header in the long form (OB, SQ, UN).
fn long_header(tag: Tag, vr: &[u8; 2], len: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&tag.group().to_le_bytes());
    h.extend_from_slice(&tag.element().to_le_bytes());
    h.extend_from_slice(vr);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&len.to_le_bytes());
    h
}

/// An item (E000), item delimiter (E00D) or sequence delimiter (E0DD) header.
fn item_header(element: u16, len: u32) -> Vec<u8> {
    let mut h = vec![0xFE, 0xFF];
    h.extend_from_slice(&element.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

/// A small valid explicit VR little endian file with `extra` appended to its data set.
fn with_raw(extra: &[u8]) -> Vec<u8> {
    let mut bytes = file_with(base(CT), "1.2.840.10008.1.2.1");
    bytes.extend_from_slice(extra);
    bytes
}

/// Every entry point refuses the input as malformed, with a message containing `needle`.
fn refused(bytes: &[u8], needle: &str) {
    let errs = [
        StreamHead::read(bytes).unwrap_err(),
        read_object(bytes).unwrap_err(),
        deidentify_bytes(bytes, &basic()).unwrap_err(),
        read_match_keys(bytes).unwrap_err(),
    ];
    for err in errs {
        assert!(matches!(err, DeidError::Malformed(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
}

/// Found by the fuzz target: dicom-rs 0.10.1 reads the content of an undefined-length UN element in the
/// data set's explicit VR, while the pre-parse walk read it as implicit VR (PS3.5 6.2.2). Bytes that are
/// (0029,1002) with 16,975 bytes in implicit VR are, in explicit VR, an OB whose length is the first four
/// value bytes; dicom-rs reserved that length before finding the input too short.
#[test]
fn un_of_undefined_length_is_checked_as_dicom_rs_reads_it() {
    let implicit_len = u32::from_le_bytes(*b"OB\0\0");
    let mut extra = long_header(Tag(0x0029, 0x1001), b"UN", u32::MAX);
    extra.extend(item_header(0xE000, u32::MAX));
    extra.extend_from_slice(&[0x29, 0x00, 0x02, 0x10]);
    extra.extend_from_slice(&implicit_len.to_le_bytes());
    let mut value = vec![0u8; implicit_len as usize];
    value[..4].copy_from_slice(&CLAIMED.to_le_bytes());
    extra.extend(value);
    extra.extend(item_header(0xE00D, 0));
    extra.extend(item_header(0xE0DD, 0));
    refused(&with_raw(&extra), &format!("element (0029,1002) declares {CLAIMED} bytes"));
}

/// dicom-rs ends a defined-length sequence at a sequence delimiter and reads the rest of its value as
/// elements; the walk skipped that rest.
#[test]
fn a_sequence_delimiter_inside_a_defined_length_sequence_is_refused() {
    let hidden = [long_header(Tag(0x0029, 0x1011), b"OB", CLAIMED), vec![0; 4]].concat();
    let value = [item_header(0xE0DD, 0), hidden].concat();
    let extra = [long_header(Tag(0x0029, 0x1010), b"SQ", value.len() as u32), value].concat();
    refused(&with_raw(&extra), "sequence (0029,1010) has a sequence delimiter");
}

/// Inside an item, dicom-rs takes an item delimiter as the item's end whatever its length says, and reads
/// on from there; the walk skipped its declared length.
#[test]
fn an_item_delimiter_inside_a_defined_length_item_is_refused() {
    let inner = [long_header(Tag(0x0029, 0x1031), b"OB", CLAIMED), vec![0; 4]].concat();
    let hidden = [item_header(0xE000, inner.len() as u32), inner].concat();
    let item = [item_header(0xE00D, hidden.len() as u32), hidden].concat();
    let extra = [
        long_header(Tag(0x0029, 0x1030), b"SQ", u32::MAX),
        item_header(0xE000, item.len() as u32),
        item,
        item_header(0xE0DD, 0),
    ]
    .concat();
    refused(&with_raw(&extra), "unexpected (FFFE,E00D)");
}

/// dicom-rs reads (7FE0,0010) encoded as SQ as a sequence of data sets, not of pixel data fragments,
/// nested or at the top level (there in `read_object`).
#[test]
fn pixel_data_encoded_as_sq_is_checked_as_a_sequence_or_refused() {
    let inner = [long_header(Tag(0x0029, 0x1021), b"OB", CLAIMED), vec![0; 4]].concat();
    let pixel_sq = [item_header(0xE000, inner.len() as u32), inner].concat();
    let pixel = [long_header(Tag(0x7FE0, 0x0010), b"SQ", pixel_sq.len() as u32), pixel_sq].concat();
    let nested = [
        long_header(Tag(0x0029, 0x1020), b"SQ", u32::MAX),
        item_header(0xE000, u32::MAX),
        pixel.clone(),
        item_header(0xE00D, 0),
        item_header(0xE0DD, 0),
    ]
    .concat();
    refused(&with_raw(&nested), &format!("element (0029,1021) declares {CLAIMED} bytes"));
    refused(&with_raw(&pixel), "(7FE0,0010) is encoded as a sequence (SQ)");
}

/// Found by the fuzz target after the fixes above: dicom-rs reads whole values only (one 4-byte float of
/// a 6-byte FL) but counts the declared length, so it read the next header two bytes early; here that
/// header is an OB whose length is 256 MiB, while the walk saw a 4,096-byte element.
#[test]
fn a_numeric_value_that_is_not_whole_values_is_refused() {
    let mut extra = vec![0x29, 0x00, 0x40, 0x10, b'F', b'L', 6, 0, 0, 0, 0, 0, 0x29, 0x00];
    extra.extend_from_slice(&[0x50, 0x10, b'O', b'B', b'O', b'B', 0, 0]);
    extra.extend_from_slice(&0x1000u32.to_le_bytes());
    extra.extend(vec![0u8; 0x1000]);
    refused(&with_raw(&extra), "element (0029,1040) declares 6 bytes, not a whole number");
}

/// Once Pixel Representation says signed, dicom-rs reads an "US or SS" element as SS whatever its VR,
/// SQ included: an odd length would put it out of step as above, though the walk sees a valid sequence.
#[test]
fn an_us_or_ss_element_of_odd_length_is_refused_even_as_a_sequence() {
    let item = [long_header(Tag(0x0029, 0x1001), b"OB", 1), vec![0]].concat();
    let sq = [item_header(0xE000, item.len() as u32), item].concat();
    let mut extra = vec![0x28, 0x00, 0x03, 0x01, b'U', b'S', 2, 0, 1, 0];
    extra.extend(long_header(Tag(0x0028, 0x0106), b"SQ", sq.len() as u32));
    extra.extend(sq);
    refused(&with_raw(&extra), "element (0028,0106) declares 21 bytes, not a whole number");
}
