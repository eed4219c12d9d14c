//! Applies Table E.1-1 and the profile's options to a data set, recursively.

use std::collections::{HashMap, HashSet};

use corelab_domain::deid_profile::DateHandling;
use dicom_core::dictionary::DataDictionary;
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use super::context::DeidContext;
use super::dates;
use super::iod::{self, IodTypes};
use super::report::{Outcome, QcFlag, ReportBuilder};
use super::safe_private;
use super::table::{Code, OptionColumn, Row, Table};
use super::uid::{OriginalUid, UidMapper};

pub(crate) const DUMMY_TEXT: &str = "ANONYMIZED";

/// The descriptors Clean Descriptors may keep when allow-listed: the ones that name the protocol,
/// study or series. Free text about the patient (diagnoses, comments, history) is never kept by an
/// allow-list: a pattern like `*LUNG*` must not keep "Lung mass, see Dr Smith".
const PROTOCOL_DESCRIPTORS: [dicom_core::Tag; 7] = [
    dicom_core::Tag(0x0008, 0x1030), // Study Description
    dicom_core::Tag(0x0008, 0x103E), // Series Description
    dicom_core::Tag(0x0018, 0x1030), // Protocol Name
    dicom_core::Tag(0x0032, 0x1060), // Requested Procedure Description
    dicom_core::Tag(0x0040, 0x0254), // Performed Procedure Step Description
    dicom_core::Tag(0x0012, 0x0072), // Clinical Trial Series Description
    dicom_core::Tag(0x0012, 0x0051), // Clinical Trial Time Point Description
];

/// Facts about the instance read from its original top-level header before any change.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub sop_class: Option<String>,
    pub modality: Option<String>,
    pub image_type: Vec<String>,
    pub burned_in: Option<String>,
    pub conversion_type: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub rows: Option<u32>,
    pub columns: Option<u32>,
    pub samples_per_pixel: Option<u32>,
    pub bits_allocated: Option<u32>,
    pub planar_configuration: Option<u32>,
    pub number_of_frames: Option<u32>,
    pub photometric: Option<String>,
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.value().to_str().ok())
        .map(|s| s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string())
}

fn uint(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    obj.get(tag).and_then(|e| e.value().to_int::<u32>().ok())
}

impl Facts {
    pub fn read(obj: &InMemDicomObject) -> Facts {
        Facts {
            sop_class: text(obj, Tag(0x0008, 0x0016)),
            modality: text(obj, Tag(0x0008, 0x0060)).map(|m| m.to_ascii_uppercase()),
            image_type: obj
                .get(Tag(0x0008, 0x0008))
                .and_then(|e| e.value().to_multi_str().ok())
                .map(|v| v.iter().map(|s| s.trim().to_ascii_uppercase()).collect())
                .unwrap_or_default(),
            burned_in: text(obj, Tag(0x0028, 0x0301)).map(|s| s.to_ascii_uppercase()),
            conversion_type: text(obj, Tag(0x0008, 0x0064)).map(|s| s.to_ascii_uppercase()),
            manufacturer: text(obj, Tag(0x0008, 0x0070)),
            model: text(obj, Tag(0x0008, 0x1090)),
            rows: uint(obj, Tag(0x0028, 0x0010)),
            columns: uint(obj, Tag(0x0028, 0x0011)),
            samples_per_pixel: uint(obj, Tag(0x0028, 0x0002)),
            bits_allocated: uint(obj, Tag(0x0028, 0x0100)),
            planar_configuration: uint(obj, Tag(0x0028, 0x0006)),
            number_of_frames: text(obj, Tag(0x0028, 0x0008)).and_then(|s| s.parse().ok()),
            photometric: text(obj, Tag(0x0028, 0x0004)).map(|s| s.to_ascii_uppercase()),
        }
    }

    /// Burned-in PHI risk flags (PS3.15 leaves pixel cleaning to the application).
    pub fn burned_in_flags(&self) -> Vec<QcFlag> {
        match self.burned_in.as_deref() {
            Some("YES") => return vec![QcFlag::BurnedInAnnotationYes],
            Some("NO") => return Vec::new(),
            _ => {}
        }
        let sop = self.sop_class.as_deref().unwrap_or("");
        let reason = if matches!(self.modality.as_deref(), Some("US" | "SC" | "OT" | "XA" | "ES" | "DOC")) {
            Some(format!("modality {}", self.modality.as_deref().unwrap_or("")))
        } else if sop.starts_with("1.2.840.10008.5.1.4.1.1.7") {
            Some("secondary capture SOP class".to_string())
        } else if sop.starts_with("1.2.840.10008.5.1.4.1.1.104.") {
            Some("encapsulated document SOP class".to_string())
        } else if self.image_type.iter().any(|v| v == "DERIVED") && self.image_type.iter().any(|v| v == "SECONDARY") {
            Some("image type DERIVED\\SECONDARY".to_string())
        } else if self.image_type.iter().any(|v| v.contains("SCREEN")) {
            Some("screen capture image type".to_string())
        } else if matches!(self.conversion_type.as_deref(), Some("WSD" | "SD" | "SI" | "SYN")) {
            Some(format!("conversion type {}", self.conversion_type.as_deref().unwrap_or("")))
        } else {
            None
        };
        reason.map(|reason| vec![QcFlag::BurnedInAnnotationUnknown { reason }]).unwrap_or_default()
    }
}

/// What to do with one attribute.
#[derive(Debug, Clone)]
enum Decision {
    Apply(Code, String),
    Keep(String),
    Shift(String),
}

pub(crate) struct Engine<'a> {
    ctx: &'a DeidContext,
    table: &'static Table,
    mapper: UidMapper,
    iod: IodTypes,
    safe: Vec<(String, u16, u8)>,
    pub report: ReportBuilder,
}

fn is_free_text(vr: VR) -> bool {
    matches!(vr, VR::PN | VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC | VR::UR | VR::AE)
}

fn is_empty_value(e: &InMemElement) -> bool {
    match e.value() {
        Value::Primitive(p) => p.calculate_byte_len() == 0,
        Value::Sequence(s) => s.items().is_empty(),
        Value::PixelSequence(_) => false,
    }
}

fn elem(tag: Tag, vr: VR, value: PrimitiveValue) -> InMemElement {
    DataElement::new(tag, vr, Value::from(value))
}

fn seq(tag: Tag, vr: VR, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, vr, Value::from(DataSetSequence::new(items, Length::UNDEFINED)))
}

/// A dummy value of the right VR (D).
pub(crate) fn dummy_value(vr: VR) -> PrimitiveValue {
    match vr {
        VR::DA => PrimitiveValue::from("19000101"),
        VR::DT => PrimitiveValue::from("19000101000000"),
        VR::TM => PrimitiveValue::from("000000"),
        VR::DS | VR::IS => PrimitiveValue::from("0"),
        VR::AS => PrimitiveValue::from("000D"),
        VR::AE | VR::CS => PrimitiveValue::from("ANONYMIZED"),
        VR::UR => PrimitiveValue::from("urn:none"),
        VR::US => PrimitiveValue::from(0u16),
        VR::SS => PrimitiveValue::from(0i16),
        VR::UL => PrimitiveValue::from(0u32),
        VR::SL => PrimitiveValue::from(0i32),
        VR::UV => PrimitiveValue::from(0u64),
        VR::SV => PrimitiveValue::from(0i64),
        VR::FL | VR::OF => PrimitiveValue::from(0f32),
        VR::FD | VR::OD => PrimitiveValue::from(0f64),
        VR::AT => PrimitiveValue::Tags(std::iter::once(Tag(0, 0)).collect()),
        VR::OB | VR::OW | VR::OL | VR::OV | VR::UN => PrimitiveValue::U8([0u8, 0u8].as_slice().into()),
        _ => PrimitiveValue::from(DUMMY_TEXT),
    }
}

/// Case-insensitive match with `*` as "any run of characters".
pub(crate) fn glob_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let (mut pi, mut vi) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    while vi < v.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = vi;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl<'a> Engine<'a> {
    pub fn new(ctx: &'a DeidContext, table: &'static Table, facts: &Facts) -> Engine<'a> {
        let mut safe: Vec<(String, u16, u8)> =
            safe_private::BUILT_IN.iter().map(|(c, g, e)| (c.to_string(), *g, *e)).collect();
        safe.extend(ctx.profile.safe_private.iter().map(|s| (s.creator.trim().to_string(), s.group, s.element)));
        Engine {
            ctx,
            table,
            mapper: UidMapper::new(&ctx.trial_secret),
            iod: IodTypes::for_sop_class(facts.sop_class.as_deref()),
            safe,
            report: ReportBuilder::default(),
        }
    }

    pub fn mapper(&self) -> &UidMapper {
        &self.mapper
    }

    fn option_enabled(&self, col: OptionColumn) -> bool {
        let p = &self.ctx.profile;
        match col {
            OptionColumn::RetainLongFullDates => p.dates == DateHandling::Keep,
            OptionColumn::RetainLongModifDates => p.dates == DateHandling::Shift,
            OptionColumn::RetainPatientCharacteristics => p.retain_patient_characteristics,
            OptionColumn::RetainDeviceIdentity => p.retain_device_identity,
            OptionColumn::RetainInstitutionIdentity => p.retain_institution_identity,
            OptionColumn::RetainUids => p.retain_uids,
            OptionColumn::CleanDescriptors => p.clean_descriptors,
            OptionColumn::RetainSafePrivate => p.retain_safe_private,
            // No profile setting turns these on: corelab has no cleaner for SR content or graphics.
            OptionColumn::CleanStructuredContent | OptionColumn::CleanGraphics => false,
        }
    }

    /// Whether every value of `e` matches the charter's descriptor allow-list.
    fn allow_listed(&self, e: &InMemElement) -> bool {
        let Value::Primitive(p) = e.value() else {
            return false;
        };
        let values: Vec<String> = match p {
            PrimitiveValue::Str(s) => vec![s.clone()],
            PrimitiveValue::Strs(v) => v.iter().cloned().collect(),
            _ => return false,
        };
        let list = &self.ctx.profile.descriptor_allow_list;
        !values.is_empty()
            && values.iter().all(|v| {
                let v = v.trim_matches(|c: char| c == '\0' || c.is_whitespace());
                list.iter().any(|pat| glob_match(pat.trim(), v))
            })
    }

    fn decide(&self, row: &Row, e: &InMemElement, depth: u32) -> Decision {
        use OptionColumn::*;
        // An enabled option's K wins.
        for col in super::table::OPTION_COLUMNS {
            if self.option_enabled(col) && row.option(col) == Some(Code::K) {
                return Decision::Keep(format!("option {col:?}: K"));
            }
        }
        if self.option_enabled(RetainLongModifDates) && row.option(RetainLongModifDates) == Some(Code::C) {
            match e.vr() {
                VR::DA | VR::DT => {
                    return Decision::Shift("option RetainLongModifDates: C (shifted)".into());
                }
                VR::TM => {
                    return Decision::Keep("option RetainLongModifDates: C (time of day kept)".into());
                }
                _ => {}
            }
        }
        if self.option_enabled(CleanDescriptors)
            && row.option(CleanDescriptors) == Some(Code::C)
            && PROTOCOL_DESCRIPTORS.contains(&e.tag())
            && self.allow_listed(e)
        {
            return Decision::Keep("option CleanDescriptors: C (allow-listed)".into());
        }
        // Other C codes (patient characteristics, device identity) have no cleaner: basic action.
        let codes = row.basic.codes();
        let ty = if depth == 0 { self.iod.top_level(e.tag()) } else { None };
        let code = iod::resolve(codes, ty);
        let rule = if codes.len() > 1 {
            let why = match ty {
                Some(t) => format!("IOD type {t:?}"),
                None => "IOD type unknown".into(),
            };
            format!("basic {} as {} ({why})", row.basic.as_text(), super::table::code_text(code))
        } else {
            format!("basic {}", row.basic.as_text())
        };
        Decision::Apply(code, rule)
    }

    /// De-identifies one data set (the top level has depth 0).
    pub fn process(&mut self, obj: InMemDicomObject, depth: u32, dummy: bool) -> InMemDicomObject {
        let mut creators: HashMap<(u16, u8), String> = HashMap::new();
        let mut overlays_removed: HashSet<u16> = HashSet::new();
        for e in obj.iter() {
            let Tag(g, el) = e.tag();
            if g % 2 == 1 && (0x0010..=0x00FF).contains(&el) {
                let c = e
                    .value()
                    .to_str()
                    .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' ').to_string())
                    .unwrap_or_default();
                creators.insert((g, el as u8), c);
            }
            if (0x6000..=0x601E).contains(&g) && g % 2 == 0 && el == 0x3000 {
                overlays_removed.insert(g);
            }
        }
        let nested = depth > 0;
        let mut kept_blocks: HashSet<(u16, u8)> = HashSet::new();
        let mut out: Vec<InMemElement> = Vec::new();
        let mut creator_elems: Vec<InMemElement> = Vec::new();
        for e in obj {
            let tag = e.tag();
            let Tag(g, el) = tag;
            if g % 2 == 1 {
                if (0x0010..=0x00FF).contains(&el) {
                    creator_elems.push(e);
                    continue;
                }
                let safe = el >= 0x1000
                    && self.ctx.profile.retain_safe_private
                    && creators.get(&(g, (el >> 8) as u8)).is_some_and(|c| {
                        self.safe.iter().any(|(sc, sg, se)| sc == c && *sg == g && *se == (el & 0xFF) as u8)
                    });
                if safe {
                    kept_blocks.insert((g, (el >> 8) as u8));
                    self.report.add(tag, nested, Outcome::KeptByOption, "option RetainSafePrivate: C (safe list)");
                    out.push(self.keep(e, depth, false));
                } else {
                    self.report.add(tag, nested, Outcome::Removed, "private attribute");
                }
                continue;
            }
            if g == 0x0000 || g == 0x0002 || el == 0x0000 {
                self.report.add(
                    tag,
                    nested,
                    Outcome::Removed,
                    "group length, command or file meta attribute in the data set",
                );
                continue;
            }
            if tag == Tag(0xFFFC, 0xFFFC) {
                self.report.add(tag, nested, Outcome::Removed, "data set trailing padding");
                continue;
            }
            if overlays_removed.contains(&g) && el != 0x3000 {
                self.report.add(tag, nested, Outcome::Removed, "overlay plane whose Overlay Data is removed");
                continue;
            }
            if let Some(e) = self.standard(e, depth, dummy) {
                out.push(e);
            }
        }
        for c in creator_elems {
            let Tag(g, el) = c.tag();
            if kept_blocks.contains(&(g, el as u8)) {
                self.report.add(c.tag(), nested, Outcome::KeptByOption, "private creator of a kept block");
                out.push(c);
            } else {
                self.report.add(c.tag(), nested, Outcome::Removed, "private creator");
            }
        }
        InMemDicomObject::from_element_iter(out)
    }

    /// Keeps an element, processing the items of a sequence.
    fn keep(&mut self, e: InMemElement, depth: u32, dummy: bool) -> InMemElement {
        let (tag, vr) = (e.tag(), e.vr());
        match e.into_value() {
            Value::Sequence(s) => {
                let items = s.into_items().into_iter().map(|it| self.process(it, depth + 1, dummy)).collect();
                seq(tag, vr, items)
            }
            v => DataElement::new(tag, vr, v),
        }
    }

    fn standard(&mut self, e: InMemElement, depth: u32, dummy: bool) -> Option<InMemElement> {
        let tag = e.tag();
        let vr = e.vr();
        let nested = depth > 0;
        let table = self.table;
        let Some(row) = table.lookup(tag) else {
            if StandardDataDictionary.by_tag(tag).is_none() {
                // Not a standard attribute this edition of PS3.6 knows: nobody can say it is safe.
                self.report.add(tag, nested, Outcome::Removed, "unknown attribute (not in PS3.6)");
                return None;
            }
            if dummy && is_free_text(vr) && !is_empty_value(&e) {
                self.report.add(tag, nested, Outcome::Dummy, "free text inside a D sequence");
                return Some(elem(tag, vr, dummy_value(vr)));
            }
            return Some(self.keep(e, depth, dummy));
        };
        match self.decide(row, &e, depth) {
            Decision::Keep(rule) => {
                self.report.add(tag, nested, Outcome::KeptByOption, rule);
                Some(self.keep(e, depth, dummy))
            }
            Decision::Shift(rule) => Some(self.shift(e, depth, rule)),
            Decision::Apply(code, rule) => self.apply(code, rule, e, depth),
        }
    }

    fn shift(&mut self, e: InMemElement, depth: u32, rule: String) -> InMemElement {
        let (tag, vr) = (e.tag(), e.vr());
        let nested = depth > 0;
        let days = self.ctx.date_shift_days.unwrap_or(0);
        let values = e.value().to_multi_str().map(|v| v.into_owned()).unwrap_or_default();
        let mut shifted = Vec::with_capacity(values.len());
        for v in &values {
            let t = v.trim();
            if t.is_empty() {
                shifted.push(String::new());
                continue;
            }
            let s = if vr == VR::DA { dates::shift_da(t, days) } else { dates::shift_dt(t, days) };
            match s {
                Some(s) => shifted.push(s),
                None => {
                    // Not a full date: it cannot be shifted, so it goes.
                    self.report.add(tag, nested, Outcome::Emptied, "unshiftable date emptied");
                    return elem(tag, vr, PrimitiveValue::Empty);
                }
            }
        }
        self.report.add(tag, nested, Outcome::DateShifted, rule);
        if shifted.is_empty() {
            return elem(tag, vr, PrimitiveValue::Empty);
        }
        elem(tag, vr, PrimitiveValue::Strs(shifted.into_iter().collect()))
    }

    fn apply(&mut self, code: Code, rule: String, e: InMemElement, depth: u32) -> Option<InMemElement> {
        let (tag, vr) = (e.tag(), e.vr());
        let nested = depth > 0;
        let is_seq = matches!(e.value(), Value::Sequence(_));
        match code {
            Code::X | Code::C => {
                self.report.add(tag, nested, Outcome::Removed, rule);
                None
            }
            Code::Z => {
                self.report.add(tag, nested, Outcome::Emptied, rule);
                Some(if is_seq { seq(tag, vr, Vec::new()) } else { elem(tag, vr, PrimitiveValue::Empty) })
            }
            Code::D => {
                self.report.add(tag, nested, Outcome::Dummy, rule);
                if is_seq {
                    // Keep the items' structure; inside, listed attributes follow the table and every
                    // other free-text value becomes a dummy.
                    Some(self.keep(e, depth, true))
                } else if vr == VR::UI {
                    Some(self.remap(e, depth, rule_uid()))
                } else {
                    Some(elem(tag, vr, dummy_value(vr)))
                }
            }
            Code::K => {
                if is_seq {
                    self.report.add(tag, nested, Outcome::SequenceProcessed, rule);
                }
                Some(self.keep(e, depth, false))
            }
            Code::UStar => {
                self.report.add(tag, nested, Outcome::SequenceProcessed, rule);
                Some(self.keep(e, depth, false))
            }
            Code::U => {
                if vr != VR::UI || is_seq {
                    self.report.add(tag, nested, Outcome::Emptied, format!("{rule} (not a UID value)"));
                    return Some(if is_seq { seq(tag, vr, Vec::new()) } else { elem(tag, vr, PrimitiveValue::Empty) });
                }
                Some(self.remap(e, depth, rule))
            }
        }
    }

    fn remap(&mut self, e: InMemElement, depth: u32, rule: String) -> InMemElement {
        let (tag, vr) = (e.tag(), e.vr());
        let values = e.value().to_multi_str().map(|v| v.into_owned()).unwrap_or_default();
        let mut out = Vec::with_capacity(values.len());
        for v in &values {
            let o = OriginalUid::new(v);
            if o.as_str().is_empty() || o.is_standard() {
                out.push(o.as_str().to_string());
            } else {
                out.push(self.mapper.map(&o).as_str().to_string());
            }
        }
        self.report.add(tag, depth > 0, Outcome::UidRemapped, rule);
        if out.is_empty() {
            return elem(tag, vr, PrimitiveValue::Empty);
        }
        elem(tag, vr, PrimitiveValue::Strs(out.into_iter().collect()))
    }
}

fn rule_uid() -> String {
    "basic D on a UID: remapped".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("AX T1*", "ax t1 vibe"));
        assert!(glob_match("*CHEST*", "CT CHEST ABDOMEN"));
        assert!(glob_match("exact", "EXACT"));
        assert!(!glob_match("exact", "EXACT X"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(!glob_match("", "x"));
    }

    #[test]
    fn dummies_have_the_right_vr_shape() {
        assert_eq!(dummy_value(VR::DA).to_str(), "19000101");
        assert_eq!(dummy_value(VR::SH).to_str(), "ANONYMIZED");
        assert!(dummy_value(VR::OB).calculate_byte_len() == 2);
        assert!(dummy_value(VR::US).calculate_byte_len() == 2);
    }

    #[test]
    fn burned_in_risk() {
        let f = Facts { modality: Some("US".into()), ..Facts::default() };
        assert!(matches!(f.burned_in_flags().as_slice(), [QcFlag::BurnedInAnnotationUnknown { .. }]));
        let f = Facts { modality: Some("US".into()), burned_in: Some("NO".into()), ..Facts::default() };
        assert!(f.burned_in_flags().is_empty());
        let f = Facts { modality: Some("CT".into()), burned_in: Some("YES".into()), ..Facts::default() };
        assert_eq!(f.burned_in_flags(), vec![QcFlag::BurnedInAnnotationYes]);
        let f = Facts { modality: Some("CT".into()), ..Facts::default() };
        assert!(f.burned_in_flags().is_empty());
        let f = Facts {
            modality: Some("CT".into()),
            image_type: vec!["DERIVED".into(), "SECONDARY".into()],
            ..Facts::default()
        };
        assert_eq!(f.burned_in_flags().len(), 1);
        let f = Facts { sop_class: Some("1.2.840.10008.5.1.4.1.1.7.4".into()), ..Facts::default() };
        assert_eq!(f.burned_in_flags().len(), 1);
        let f = Facts { sop_class: Some("1.2.840.10008.5.1.4.1.1.104.1".into()), ..Facts::default() };
        assert_eq!(f.burned_in_flags().len(), 1);
    }
}
