//! Moving an already de-identified instance from a provisional pseudonym to the subject and visit
//! a coordinator assigned it to. No original value is involved: only the pseudonym attributes are
//! rewritten and, when the charter shifts dates, every date moves by the difference between the
//! subject's shift and the provisional one (so it ends up as if de-identified for that subject).

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::dates::{shift_da, shift_dt};
use super::{DeidError, read_object};

/// What the instance becomes.
#[derive(Debug, Clone)]
pub struct Reassignment {
    pub subject_id: String,
    pub time_point_id: String,
    pub time_point_description: Option<String>,
    /// Days to add to every date (subject shift minus provisional shift); 0 leaves dates alone.
    pub shift_delta_days: i32,
}

const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
const CT_SUBJECT_ID: Tag = Tag(0x0012, 0x0040);
const CT_TIME_POINT_ID: Tag = Tag(0x0012, 0x0050);
const CT_TIME_POINT_DESCRIPTION: Tag = Tag(0x0012, 0x0051);

fn shift_dates(obj: &mut InMemDicomObject, days: i32) {
    let tags: Vec<Tag> = obj.iter().map(|e| e.tag()).collect();
    for tag in tags {
        let Ok(e) = obj.element(tag) else { continue };
        let vr = e.vr();
        match e.value() {
            Value::Sequence(seq) => {
                let mut items: Vec<InMemDicomObject> = seq.items().to_vec();
                for item in &mut items {
                    shift_dates(item, days);
                }
                let len = seq.length();
                obj.put(DataElement::new(tag, VR::SQ, Value::from(DataSetSequence::new(items, len))));
            }
            Value::Primitive(p) if vr == VR::DA || vr == VR::DT => {
                let values: Vec<String> = p.to_multi_str().iter().map(|s| s.to_string()).collect();
                let shifted: Vec<String> = values
                    .iter()
                    .map(|v| {
                        let t = v.trim();
                        if t.is_empty() {
                            return String::new();
                        }
                        let r = if vr == VR::DA { shift_da(t, days) } else { shift_dt(t, days) };
                        r.unwrap_or_default()
                    })
                    .collect();
                let value = if shifted.len() == 1 {
                    PrimitiveValue::from(shifted[0].clone())
                } else {
                    PrimitiveValue::Strs(shifted.into_iter().collect())
                };
                obj.put(DataElement::new(tag, vr, value));
            }
            _ => {}
        }
    }
}

/// Rewrites a de-identified Part 10 instance for its assigned subject and visit; the transfer
/// syntax, UIDs and pixel data are kept.
pub fn reassign(bytes: &[u8], r: &Reassignment) -> Result<Vec<u8>, DeidError> {
    let mut file: FileDicomObject<InMemDicomObject> = read_object(bytes)?;
    let obj: &mut InMemDicomObject = &mut file;
    let put =
        |obj: &mut InMemDicomObject, tag, vr, v: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    put(obj, PATIENT_ID, VR::LO, &r.subject_id);
    put(obj, PATIENT_NAME, VR::PN, &r.subject_id);
    put(obj, CT_SUBJECT_ID, VR::LO, &r.subject_id);
    put(obj, CT_TIME_POINT_ID, VR::LO, &r.time_point_id);
    match &r.time_point_description {
        Some(d) => {
            put(obj, CT_TIME_POINT_DESCRIPTION, VR::ST, d);
        }
        None => {
            obj.remove_element(CT_TIME_POINT_DESCRIPTION);
        }
    }
    if r.shift_delta_days != 0 {
        shift_dates(obj, r.shift_delta_days);
    }
    let mut buf = Vec::with_capacity(bytes.len());
    file.write_all(&mut buf).map_err(|e| DeidError::Write(e.to_string()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_object::FileMetaTableBuilder;

    fn sample() -> Vec<u8> {
        let e = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
        let item = InMemDicomObject::from_element_iter(vec![e(Tag(0x0008, 0x0022), VR::DA, "20230310")]);
        let obj = InMemDicomObject::from_element_iter(vec![
            e(Tag(0x0008, 0x0016), VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
            e(Tag(0x0008, 0x0018), VR::UI, "2.25.1"),
            e(Tag(0x0008, 0x0020), VR::DA, "20230305"),
            e(Tag(0x0008, 0x002A), VR::DT, "20230305101500"),
            e(PATIENT_NAME, VR::PN, "UNASSIGNED-ab12"),
            e(PATIENT_ID, VR::LO, "UNASSIGNED-ab12"),
            DataElement::new(
                Tag(0x0008, 0x1140),
                VR::SQ,
                Value::from(DataSetSequence::new(vec![item], dicom_core::Length::UNDEFINED)),
            ),
        ]);
        let f = obj
            .with_meta(
                FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").implementation_class_uid("1.2.3"),
            )
            .unwrap();
        let mut b = Vec::new();
        f.write_all(&mut b).unwrap();
        b
    }

    #[test]
    fn rewrites_the_pseudonym_and_moves_every_date_including_nested_ones() {
        let out = reassign(
            &sample(),
            &Reassignment {
                subject_id: "101-007".into(),
                time_point_id: "W8".into(),
                time_point_description: Some("Week 8".into()),
                shift_delta_days: -10,
            },
        )
        .unwrap();
        let obj = read_object(&out).unwrap();
        let s = |t| obj.element(t).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string();
        assert_eq!(s(PATIENT_ID), "101-007");
        assert_eq!(s(PATIENT_NAME), "101-007");
        assert_eq!(s(CT_SUBJECT_ID), "101-007");
        assert_eq!(s(CT_TIME_POINT_ID), "W8");
        assert_eq!(s(Tag(0x0008, 0x0020)), "20230223");
        assert_eq!(s(Tag(0x0008, 0x002A)), "20230223101500");
        let nested = obj.element(Tag(0x0008, 0x1140)).unwrap().items().unwrap()[0]
            .element(Tag(0x0008, 0x0022))
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(nested.trim(), "20230228");
        assert_eq!(s(Tag(0x0008, 0x0018)), "2.25.1", "UIDs do not change");
    }
}
