//! Rough single-thread throughput of de-identification on a 512x512 16-bit CT slice.
//!
//! `cargo run --release -p corelab-dicom --example deid_throughput [iterations]`
//! Prints instances/s for: the stream path (bytes in, bytes out), the object path (parse with
//! dicom-rs, de-identify, write), and a dicom-rs parse+write baseline without de-identification.

use std::time::Instant;

use corelab_dicom::deid::{DeidContext, deidentify_object, deidentify_stream, read_object};
use corelab_domain::deid_profile::DeidProfile;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

fn s(g: u16, e: u16, vr: VR, v: &str) -> InMemElement {
    DataElement::new(Tag(g, e), vr, PrimitiveValue::from(v))
}

fn ct_slice() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let item = |name: &str| {
        InMemDicomObject::from_element_iter([
            s(0x0008, 0x0080, VR::LO, "ST MARY GENERAL HOSPITAL"),
            s(0x0040, 0xA123, VR::PN, name),
            s(0x0008, 0x1155, VR::UI, "1.2.826.0.1.3680043.8.498.55501"),
        ])
    };
    let mut e = vec![
        s(0x0008, 0x0005, VR::CS, "ISO_IR 100"),
        s(0x0008, 0x0008, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL"),
        s(0x0008, 0x0016, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        s(0x0008, 0x0018, VR::UI, "1.2.826.0.1.3680043.8.498.12345678901234567890"),
        s(0x0008, 0x0020, VR::DA, "20230315"),
        s(0x0008, 0x0021, VR::DA, "20230315"),
        s(0x0008, 0x0022, VR::DA, "20230315"),
        s(0x0008, 0x0023, VR::DA, "20230315"),
        s(0x0008, 0x0030, VR::TM, "101500"),
        s(0x0008, 0x0050, VR::SH, "A123456789"),
        s(0x0008, 0x0060, VR::CS, "CT"),
        s(0x0008, 0x0070, VR::LO, "SIEMENS"),
        s(0x0008, 0x0080, VR::LO, "ST MARY GENERAL HOSPITAL"),
        s(0x0008, 0x0081, VR::ST, "1 MAIN STREET^SPRINGFIELD"),
        s(0x0008, 0x0090, VR::PN, "REFERRER^JOHN"),
        s(0x0008, 0x1010, VR::SH, "CT01"),
        s(0x0008, 0x1030, VR::LO, "CT CHEST ABDOMEN PELVIS W CONTRAST"),
        s(0x0008, 0x103E, VR::LO, "AX 1.25mm STD"),
        s(0x0008, 0x1050, VR::PN, "PERFORMER^ANNA"),
        s(0x0008, 0x1070, VR::PN, "OPERATOR^OSKAR"),
        s(0x0008, 0x1090, VR::LO, "SOMATOM Definition AS+"),
        s(0x0010, 0x0010, VR::PN, "SMITH^JOHN"),
        s(0x0010, 0x0020, VR::LO, "MRN1234567"),
        s(0x0010, 0x0030, VR::DA, "19600101"),
        s(0x0010, 0x0040, VR::CS, "M"),
        s(0x0010, 0x1010, VR::AS, "063Y"),
        s(0x0010, 0x1030, VR::DS, "80"),
        s(0x0010, 0x1040, VR::LO, "12 ELM ROAD^SPRINGFIELD"),
        s(0x0018, 0x0050, VR::DS, "1.25"),
        s(0x0018, 0x0060, VR::DS, "120"),
        s(0x0018, 0x1000, VR::LO, "SN-12345"),
        s(0x0018, 0x1030, VR::LO, "CAP_ONC_TRIAL"),
        s(0x0018, 0x5100, VR::CS, "FFS"),
        s(0x0020, 0x000D, VR::UI, "1.2.826.0.1.3680043.8.498.1111"),
        s(0x0020, 0x000E, VR::UI, "1.2.826.0.1.3680043.8.498.2222"),
        s(0x0020, 0x0010, VR::SH, "1001"),
        s(0x0020, 0x0011, VR::IS, "2"),
        s(0x0020, 0x0013, VR::IS, "42"),
        s(0x0020, 0x0032, VR::DS, "-160\\-160\\-250.5"),
        s(0x0020, 0x0037, VR::DS, "1\\0\\0\\0\\1\\0"),
        s(0x0020, 0x0052, VR::UI, "1.2.826.0.1.3680043.8.498.3333"),
        s(0x0020, 0x4000, VR::LT, "scanned at ST MARY by OPERATOR"),
        s(0x0028, 0x0004, VR::CS, "MONOCHROME2"),
        s(0x0028, 0x0030, VR::DS, "0.625\\0.625"),
        s(0x0028, 0x1050, VR::DS, "40"),
        s(0x0028, 0x1051, VR::DS, "400"),
        s(0x0028, 0x1052, VR::DS, "-1024"),
        s(0x0028, 0x1053, VR::DS, "1"),
        s(0x0009, 0x0010, VR::LO, "ACME TRIAL PRIVATE 1.0"),
        s(0x0009, 0x1001, VR::LO, "SMITH JOHN"),
        s(0x0009, 0x1002, VR::LO, "SSN-123-45-6789"),
    ];
    for (tag, n) in [(Tag(0x0008, 0x1111), 1), (Tag(0x0040, 0x0275), 2), (Tag(0x0008, 0x1115), 3)] {
        let items: Vec<InMemDicomObject> = (0..n).map(|i| item(&format!("PERSON^{i}"))).collect();
        e.push(DataElement::new(tag, VR::SQ, Value::from(DataSetSequence::new(items, Length::UNDEFINED))));
    }
    for (g, el, v) in [
        (0x0028, 0x0002, 1u16),
        (0x0028, 0x0010, 512),
        (0x0028, 0x0011, 512),
        (0x0028, 0x0100, 16),
        (0x0028, 0x0101, 12),
        (0x0028, 0x0102, 11),
        (0x0028, 0x0103, 0),
    ] {
        e.push(DataElement::new(Tag(g, el), VR::US, PrimitiveValue::from(v)));
    }
    let pixels: Vec<u16> = (0..512 * 512).map(|i| (i % 4096) as u16).collect();
    e.push(DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U16(pixels.into())));
    let f = InMemDicomObject::from_element_iter(e).with_meta(
        FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").implementation_class_uid("1.2.3.4"),
    )?;
    let mut out = Vec::new();
    f.write_all(&mut out)?;
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let input = ct_slice()?;
    let ctx = DeidContext {
        trial_secret: b"benchmark trial secret 0123456789".to_vec(),
        sponsor_name: "ACME ONCOLOGY".into(),
        protocol_id: "ACME-ONC-301".into(),
        protocol_name: None,
        site_id: "SITE01".into(),
        site_name: None,
        subject_id: "SITE01-0001".into(),
        time_point_id: Some("V1".into()),
        time_point_description: None,
        date_shift_days: None,
        profile: DeidProfile::default(),
    };
    println!("input: one CT slice, 512x512x16 bit, {} bytes; {n} iterations per path", input.len());
    let mut out = Vec::with_capacity(input.len() + 4096);
    let t = Instant::now();
    for _ in 0..n {
        out.clear();
        deidentify_stream(input.as_slice(), &mut out, &ctx)?;
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "stream path (bytes -> bytes):            {:8.0} instances/s ({:.0} MB/s)",
        n as f64 / dt,
        n as f64 * input.len() as f64 / dt / 1e6
    );
    let t = Instant::now();
    for _ in 0..n {
        out.clear();
        let (o, _) = deidentify_object(read_object(&input)?, &ctx)?;
        o.write_all(&mut out)?;
    }
    let dt = t.elapsed().as_secs_f64();
    println!("object path (parse, de-identify, write): {:8.0} instances/s", n as f64 / dt);
    let t = Instant::now();
    for _ in 0..n {
        out.clear();
        read_object(&input)?.write_all(&mut out)?;
    }
    let dt = t.elapsed().as_secs_f64();
    println!("dicom-rs parse + write only (baseline):  {:8.0} instances/s", n as f64 / dt);
    Ok(())
}
