//! Property tests: random nested data sets with planted values never leak them; the same secret gives
//! the same bytes; references stay consistent across instances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ctx;
use corelab_dicom::deid::{DeidContext, deidentify_bytes, deidentify_object, read_object};
use corelab_domain::deid_profile::{DateHandling, DeidProfile};
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use proptest::prelude::*;

/// Attributes whose basic action is not K (X, Z, D or a combined code) holding text.
const PHI_TAGS: &[(Tag, VR)] = &[
    (Tag(0x0010, 0x0010), VR::PN),
    (Tag(0x0010, 0x1040), VR::LO),
    (Tag(0x0010, 0x1000), VR::LO),
    (Tag(0x0008, 0x0080), VR::LO),
    (Tag(0x0008, 0x0090), VR::PN),
    (Tag(0x0008, 0x1050), VR::PN),
    (Tag(0x0008, 0x1070), VR::PN),
    (Tag(0x0008, 0x1010), VR::SH),
    (Tag(0x0018, 0x1000), VR::LO),
    (Tag(0x0008, 0x1030), VR::LO),
    (Tag(0x0008, 0x103E), VR::LO),
    (Tag(0x0020, 0x4000), VR::LT),
    (Tag(0x0010, 0x4000), VR::LT),
    (Tag(0x0008, 0x0050), VR::SH),
    (Tag(0x0020, 0x0010), VR::SH),
    (Tag(0x0010, 0x2180), VR::SH),
    (Tag(0x0040, 0xA123), VR::PN),
    (Tag(0x0008, 0x1040), VR::LO),
    (Tag(0x0010, 0x0020), VR::LO),
    (Tag(0x0010, 0x0030), VR::DA),
];

/// UID attributes with action U.
const UID_TAGS: &[Tag] =
    &[Tag(0x0020, 0x000D), Tag(0x0020, 0x000E), Tag(0x0008, 0x1155), Tag(0x0020, 0x0052), Tag(0x0008, 0x3010)];

/// Sequences: not listed (kept), D, X, X/Z/U*, D, X/Z/D.
const CONTAINERS: &[Tag] = &[
    Tag(0x0008, 0x1115),
    Tag(0x0040, 0xA730),
    Tag(0x0040, 0x0275),
    Tag(0x0008, 0x1140),
    Tag(0x0040, 0x1101),
    Tag(0x0008, 0x0082),
];

#[derive(Debug, Clone)]
enum Node {
    Phi(usize, String),
    Uid(usize, String),
    Private(u8, String),
    Seq(usize, Vec<Vec<Node>>),
}

fn planted() -> impl Strategy<Value = String> {
    "[A-Z]{8}".prop_map(|s| format!("PHI{s}"))
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        (0..PHI_TAGS.len(), planted()).prop_map(|(i, v)| Node::Phi(i, v)),
        (0..UID_TAGS.len(), "[1-9][0-9]{11}").prop_map(|(i, d)| Node::Uid(i, format!("1.2.826.0.1.3680043.9.{d}"))),
        (0x01u8..0x20, planted()).prop_map(|(e, v)| Node::Private(e, v)),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(4, 48, 4, |inner| {
        (0..CONTAINERS.len(), prop::collection::vec(prop::collection::vec(inner, 0..4), 1..3))
            .prop_map(|(i, items)| Node::Seq(i, items))
    })
}

/// Builds the elements of one data set; a tag that occurs twice keeps its first value only, and only
/// values that made it into the data set are recorded as planted.
fn build(nodes: &[Node], planted: &mut Vec<String>) -> Vec<InMemElement> {
    let mut out: Vec<InMemElement> = Vec::new();
    let mut has_private = false;
    for n in nodes {
        let mut mine = Vec::new();
        let e = match n {
            Node::Phi(i, v) => {
                let (tag, vr) = PHI_TAGS[*i];
                let v = if vr == VR::DA { "19700101".to_string() } else { v.clone() };
                if vr != VR::DA {
                    mine.push(v.clone());
                }
                DataElement::new(tag, vr, PrimitiveValue::from(v))
            }
            Node::Uid(i, v) => {
                mine.push(v.clone());
                DataElement::new(UID_TAGS[*i], VR::UI, PrimitiveValue::from(v.as_str()))
            }
            Node::Private(e, v) => {
                mine.push(v.clone());
                DataElement::new(Tag(0x0009, 0x1000 | u16::from(*e)), VR::LO, PrimitiveValue::from(v.as_str()))
            }
            Node::Seq(i, items) => {
                let items: Vec<InMemDicomObject> =
                    items.iter().map(|it| InMemDicomObject::from_element_iter(build(it, &mut mine))).collect();
                DataElement::new(CONTAINERS[*i], VR::SQ, Value::from(DataSetSequence::new(items, Length::UNDEFINED)))
            }
        };
        if out.iter().any(|o| o.header().tag == e.header().tag) {
            continue;
        }
        has_private |= e.header().tag.group() == 0x0009;
        planted.extend(mine);
        out.push(e);
    }
    if has_private {
        out.push(DataElement::new(Tag(0x0009, 0x0010), VR::LO, PrimitiveValue::from("RANDOM PRIVATE")));
    }
    out
}

fn file(mut elems: Vec<InMemElement>, sop_class: &str, sop: &str, ts: &str) -> Vec<u8> {
    elems.retain(|e| e.header().tag != Tag(0x0008, 0x0018) && e.header().tag != Tag(0x0008, 0x0016));
    elems.push(DataElement::new(Tag(0x0008, 0x0016), VR::UI, PrimitiveValue::from(sop_class)));
    elems.push(DataElement::new(Tag(0x0008, 0x0018), VR::UI, PrimitiveValue::from(sop)));
    let f = InMemDicomObject::from_element_iter(elems)
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(ts).implementation_class_uid("1.2.3.4"))
        .unwrap();
    let mut b = Vec::new();
    f.write_all(&mut b).unwrap();
    b
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn profile_for(shift: bool) -> (DeidProfile, Option<i32>) {
    if shift {
        (DeidProfile { dates: DateHandling::Shift, ..DeidProfile::default() }, Some(-123))
    } else {
        (DeidProfile::default(), None)
    }
}

const CLASSES: &[&str] = &["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.4"];
const SYNTAXES: &[&str] = &["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99"];

/// A reader that hands out at most a few bytes per call.
struct Trickle<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = self.sizes[self.i % self.sizes.len()].min(buf.len()).min(self.data.len());
        self.i += 1;
        buf[..want].copy_from_slice(&self.data[..want]);
        self.data = &self.data[want..];
        Ok(want)
    }
}

fn sample_file(ts: &str) -> Vec<u8> {
    let nodes = vec![
        Node::Phi(1, "PHIADDRESS".into()),
        Node::Seq(0, vec![vec![Node::Uid(2, "1.2.826.0.1.3680043.9.12345".into()), Node::Phi(0, "PHINAMEX".into())]]),
        Node::Private(3, "PHIPRIVATE".into()),
    ];
    let mut planted = Vec::new();
    let mut elems = build(&nodes, &mut planted);
    elems.push(DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U8(vec![5u8; 64].into())));
    file(elems, CLASSES[0], "1.2.826.0.1.3680043.9.31", ts)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn planted_values_never_leak(nodes in prop::collection::vec(node(), 1..12), class in 0..CLASSES.len(), ts in 0..SYNTAXES.len(), shift: bool) {
        let mut planted = Vec::new();
        let elems = build(&nodes, &mut planted);
        let sop = "1.2.826.0.1.3680043.9.777";
        planted.push(sop.to_string());
        let input = file(elems, CLASSES[class], sop, SYNTAXES[ts]);
        if SYNTAXES[ts] != "1.2.840.10008.1.2.1.99" {
            prop_assert!(planted.iter().all(|v| contains(&input, v)), "planting works");
        }
        let (p, days) = profile_for(shift);
        let c = ctx(p, "SUBJ-9", days);
        let (out, _) = deidentify_bytes(&input, &c).unwrap();
        // Deflated output is compressed: look at the parsed values (written again uncompressed).
        let obj = read_object(&out).unwrap();
        let mut plain = Vec::new();
        obj.into_inner()
            .with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").implementation_class_uid("1.2.3.4").media_storage_sop_class_uid("1.2.3").media_storage_sop_instance_uid("1.2.3"))
            .unwrap()
            .write_all(&mut plain)
            .unwrap();
        for v in &planted {
            prop_assert!(!contains(&plain, v), "planted {v} leaked");
            if SYNTAXES[ts] != "1.2.840.10008.1.2.1.99" {
                prop_assert!(!contains(&out, v), "planted {v} leaked (raw)");
            }
        }
        // both paths agree
        let (o2, _) = deidentify_object(read_object(&input).unwrap(), &c).unwrap();
        let mut w = Vec::new();
        o2.write_all(&mut w).unwrap();
        prop_assert!(w == out);
    }

    #[test]
    fn same_secret_same_bytes(nodes in prop::collection::vec(node(), 1..10), ts in 0..SYNTAXES.len()) {
        let mut planted = Vec::new();
        let input = file(build(&nodes, &mut planted), CLASSES[1], "1.2.826.0.1.3680043.9.55", SYNTAXES[ts]);
        let c = ctx(DeidProfile::default(), "SUBJ-1", None);
        let (a, ra) = deidentify_bytes(&input, &c).unwrap();
        let (b, rb) = deidentify_bytes(&input, &c).unwrap();
        prop_assert!(a == b);
        prop_assert_eq!(ra, rb);
    }

    #[test]
    fn references_map_like_their_targets(digits in prop::collection::vec("[1-9][0-9]{9}", 2..6)) {
        let uids: Vec<String> = digits.iter().map(|d| format!("1.2.826.0.1.3680043.9.{d}")).collect();
        let c: DeidContext = ctx(DeidProfile::default(), "SUBJ-2", None);
        // Instance 0 owns uids[0]; instance 1 references every uid, nested two levels deep.
        let owner = file(vec![], CLASSES[0], &uids[0], SYNTAXES[0]);
        let refs: Vec<InMemDicomObject> = uids
            .iter()
            .map(|u| {
                let inner = InMemDicomObject::from_element_iter([DataElement::new(Tag(0x0008, 0x1155), VR::UI, PrimitiveValue::from(u.as_str()))]);
                InMemDicomObject::from_element_iter([
                    DataElement::new(Tag(0x0020, 0x000E), VR::UI, PrimitiveValue::from(u.as_str())),
                    DataElement::new(Tag(0x0008, 0x1199), VR::SQ, Value::from(DataSetSequence::new(vec![inner], Length::UNDEFINED))),
                ])
            })
            .collect();
        let referrer = file(
            vec![DataElement::new(Tag(0x0008, 0x1115), VR::SQ, Value::from(DataSetSequence::new(refs, Length::UNDEFINED)))],
            CLASSES[0],
            "1.2.826.0.1.3680043.9.1",
            SYNTAXES[0],
        );
        let (o, _) = deidentify_bytes(&owner, &c).unwrap();
        let owner_new = read_object(&o).unwrap().get(Tag(0x0008, 0x0018)).unwrap().value().to_str().unwrap().trim_end_matches('\0').to_string();
        let (r, _) = deidentify_bytes(&referrer, &c).unwrap();
        let r = read_object(&r).unwrap();
        let items = r.get(Tag(0x0008, 0x1115)).unwrap().value().items().unwrap().to_vec();
        prop_assert_eq!(items.len(), uids.len());
        let mut seen = std::collections::HashSet::new();
        for it in &items {
            let series = it.get(Tag(0x0020, 0x000E)).unwrap().value().to_str().unwrap().trim_end_matches('\0').to_string();
            let nested = it.get(Tag(0x0008, 0x1199)).unwrap().value().items().unwrap()[0]
                .get(Tag(0x0008, 0x1155)).unwrap().value().to_str().unwrap().trim_end_matches('\0').to_string();
            prop_assert_eq!(&series, &nested, "same original UID, same new UID at every level");
            prop_assert!(series.starts_with("2.25."));
            seen.insert(series);
        }
        let first = items[0].get(Tag(0x0008, 0x1199)).unwrap().value().items().unwrap()[0]
            .get(Tag(0x0008, 0x1155)).unwrap().value().to_str().unwrap().trim_end_matches('\0').to_string();
        prop_assert_eq!(first, owner_new, "reference maps to the owner's new SOP Instance UID");
        let distinct: std::collections::HashSet<_> = uids.iter().collect();
        prop_assert_eq!(seen.len(), distinct.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn short_reads_give_the_same_output(sizes in prop::collection::vec(1usize..9, 1..6), ts in 0..SYNTAXES.len()) {
        let input = sample_file(SYNTAXES[ts]);
        let c = ctx(DeidProfile::default(), "SUBJ-3", None);
        let (want, _) = deidentify_bytes(&input, &c).unwrap();
        let mut got = Vec::new();
        corelab_dicom::deid::deidentify_stream(Trickle { data: &input, sizes, i: 0 }, &mut got, &c).unwrap();
        prop_assert!(got == want);
    }

    #[test]
    fn truncated_input_is_refused_never_crashes(cut_frac in 0.0f64..1.0, ts in 0..2usize) {
        // (not deflated: there a cut lands inside the compressed stream)
        let input = sample_file(SYNTAXES[ts]);
        let cut = ((input.len() as f64) * cut_frac) as usize;
        let c = ctx(DeidProfile::default(), "SUBJ-3", None);
        match deidentify_bytes(&input[..cut], &c) {
            // A cut between two top-level elements leaves a shorter but well-formed data set;
            // the sample ends with a 64-byte Pixel Data value, so a cut inside it must fail.
            Ok((out, _)) => {
                prop_assert!(cut < input.len() - 64, "cut at {} inside the pixel data accepted", cut);
                for v in ["PHIADDRESS", "PHINAMEX", "PHIPRIVATE", "1.2.826.0.1.3680043.9.12345"] {
                    prop_assert!(!contains(&out, v));
                }
            }
            Err(e) => prop_assert!(!e.to_string().contains("PHI"), "error names a value: {}", e),
        }
    }

    #[test]
    fn corrupted_input_never_crashes(pos_frac in 0.0f64..1.0, byte: u8, ts in 0..2usize) {
        let mut input = sample_file(SYNTAXES[ts]);
        let pos = 132 + (((input.len() - 132) as f64) * pos_frac) as usize;
        let pos = pos.min(input.len() - 1);
        input[pos] = byte;
        let c = ctx(DeidProfile::default(), "SUBJ-3", None);
        match deidentify_bytes(&input, &c) {
            Ok((out, report)) => {
                // A corrupted tag can turn into a kept attribute, so values may survive; the
                // output must still be DICOM and the report must carry no value.
                prop_assert!(read_object(&out).is_ok());
                let json = serde_json::to_string(&report).unwrap();
                prop_assert!(!json.contains("PHI"));
            }
            Err(e) => prop_assert!(!e.to_string().contains("PHI")),
        }
    }
}
