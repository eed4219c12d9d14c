//! DICOM de-identification: PS3.15 Annex E Basic Application Level Confidentiality Profile with the
//! options of a trial's [`DeidProfile`](corelab_domain::deid_profile::DeidProfile).
//!
//! Entry points:
//! - [`deidentify_object`]: an in-memory dicom-rs object in, the de-identified object and a report out.
//! - [`deidentify_stream`]: bytes in, bytes out, holding only the header in memory: the Pixel Data
//!   value is copied through in chunks (masked on the way when a charter mask applies). Writing the
//!   object of [`deidentify_object`] with dicom-rs `write_all` gives the same bytes.
//! - [`deidentify_bytes`]: the same on a byte slice, all-or-nothing.
//! - [`StreamHead`]: one pass for ingest: read the header, look at its [`MatchKeys`], choose the
//!   context, then de-identify the rest of the stream.
//! - [`read_match_keys`] / [`match_keys_of`]: what ingest needs for matching, read before
//!   de-identification, in a PHI-holding type with a redacting Debug.
//! - [`read_object`]: parse a file held in memory, refusing broken structure and impossible lengths
//!   before dicom-rs reserves memory for them.
//! - [`UidMapper`]: the same UID mapping, for callers that need a new UID (e.g. to index a study).
//!
//! Rules (see `table.rs` for the data and `engine.rs` for the codes):
//! - Every attribute of Table E.1-1 (edition [`TABLE_EDITION`]) gets its action wherever it occurs,
//!   inside every sequence item; standard attributes the table does not list are kept, sequences
//!   among them processed recursively; attributes the PS3.6 dictionary does not know (even group) are
//!   removed, since nobody can say they are safe. Combined codes resolve by IOD type (`iod.rs`).
//! - An enabled option's K keeps an attribute; Modified Dates shifts DA and the date part of DT by the
//!   subject's offset (times of day are kept); Clean Descriptors keeps a descriptor whose every value
//!   matches the allow-list and otherwise applies the basic action. C codes of other options have no
//!   cleaner here and fall back to the basic action.
//! - D on a sequence keeps its items, applies the table inside and replaces every other free-text
//!   value inside with a dummy.
//! - Private attributes are removed, except under Retain Safe Private the attributes on the built-in
//!   list (`safe_private.rs`) or the profile's `safe_private`; a private creator stays only when an
//!   attribute of its block stays. Group lengths, command-group and file-meta attributes inside the
//!   data set, Data Set Trailing Padding and every attribute of an overlay group whose Overlay Data is
//!   removed are removed.
//! - Burned-in text: instances with Burned In Annotation YES, or without it on kinds known to carry
//!   text in pixels (US, SC, OT, XA, ES, DOC, secondary capture and encapsulated document classes,
//!   DERIVED\SECONDARY, screen captures) are flagged for QC. A charter pixel mask that matches
//!   (manufacturer, model prefix, rows, columns) blanks its regions in native little endian pixel
//!   data (any bits allocated 1/8/16/32/64, samples 1 or 3, any planar configuration, all frames) and
//!   sets Burned In Annotation NO with code 113101; on compressed or big endian data it is not applied
//!   and the instance is flagged.
//! - Patient ID and Patient's Name become the subject ID; the Clinical Trial Subject/Study attributes
//!   are written from the context (Site Name only when institution identity is retained); Patient
//!   Identity Removed = YES, De-identification Method and its Code Sequence (CID 7050), Longitudinal
//!   Temporal Information Modified = MODIFIED, UNMODIFIED or REMOVED.
//! - File meta: Media Storage SOP Instance UID remapped, source/sending/receiving AE titles and
//!   private information dropped, preamble written as zeros. The transfer syntax never changes.

mod context;
mod dates;
mod engine;
mod iod;
mod keys;
mod pixels;
mod reassign;
mod report;
mod safe_private;
mod stream;
pub mod table;
mod uid;

use corelab_domain::deid_profile::DateHandling;
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_encoding::transfer_syntax::{Codec, Endianness, TransferSyntaxIndex};
use dicom_object::mem::InMemElement;
use dicom_object::{FileDicomObject, FileMetaTable, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

pub use context::DeidContext;
pub use dates::{DATE_SHIFT_LABEL, keyed_date_shift};
pub use keys::{MatchKeys, match_keys_of, read_match_keys};
pub use reassign::{Reassignment, reassign};
pub use report::{DeidReport, Outcome, QcFlag, ReportEntry};
pub use stream::{StreamHead, deidentify_bytes, deidentify_stream};
pub use table::TABLE_EDITION;
pub use uid::{DeidUid, OriginalUid, UidMapper};

use engine::{Engine, Facts};
use pixels::{MaskDecision, PixelEncoding};
use report::ReportBuilder;

/// Why an instance could not be de-identified. Messages name the problem, never a value; the caller
/// adds the file name.
#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    #[error("not a DICOM Part 10 file: {0}")]
    NotDicom(String),
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("malformed DICOM: {0}")]
    Malformed(String),
    #[error("unsupported transfer syntax {0}")]
    UnsupportedTransferSyntax(String),
    #[error("invalid de-identification context: {0}")]
    Context(String),
    #[error("could not read the input {0}")]
    Read(String),
    #[error("could not write the output: {0}")]
    Write(String),
    #[error(transparent)]
    Table(#[from] table::TableError),
}

pub(crate) const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// How the data set of a transfer syntax is encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    pub explicit: bool,
    pub big_endian: bool,
    pub deflated: bool,
}

pub(crate) fn syntax_of(ts_uid: &str) -> Result<(Syntax, &'static dicom_encoding::TransferSyntax), DeidError> {
    let uid = uid::trim_uid(ts_uid);
    let ts = TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| DeidError::UnsupportedTransferSyntax(format!("{uid} (not known)")))?;
    let deflated = matches!(ts.codec(), Codec::Dataset(_));
    if deflated && !matches!(ts.codec(), Codec::Dataset(Some(_))) {
        return Err(DeidError::UnsupportedTransferSyntax(format!("{uid} (no data set adapter)")));
    }
    Ok((Syntax { explicit: uid != "1.2.840.10008.1.2", big_endian: ts.endianness() == Endianness::Big, deflated }, ts))
}

/// The transfer syntax used to encode the data set bytes themselves (inflated for deflate).
pub(crate) fn inner_ts(
    syntax: Syntax,
    ts: &'static dicom_encoding::TransferSyntax,
) -> Result<&'static dicom_encoding::TransferSyntax, DeidError> {
    if syntax.deflated {
        TransferSyntaxRegistry
            .get("1.2.840.10008.1.2.1")
            .ok_or_else(|| DeidError::UnsupportedTransferSyntax("explicit VR little endian missing".into()))
    } else {
        Ok(ts)
    }
}

/// The result of de-identifying the header part of an instance (everything but the Pixel Data value).
pub(crate) struct HeaderOutcome<'a> {
    pub engine: Engine<'a>,
    pub mask: MaskDecision,
}

/// De-identifies the top-level header (without Pixel Data). Shared by the object and stream paths.
pub(crate) fn deid_header<'a>(
    header: InMemDicomObject,
    ctx: &'a DeidContext,
    enc: Option<PixelEncoding>,
) -> Result<(InMemDicomObject, HeaderOutcome<'a>), DeidError> {
    let table = table::Table::standard()?;
    let facts = Facts::read(&header);
    let mut engine = Engine::new(ctx, table, &facts);
    let mask = pixels::decide(&ctx.profile.pixel_masks, &facts, enc);
    let mut out = engine.process(header, 0, false);
    finish_top(&mut out, ctx, &mut engine.report, &mask);
    engine.report.flags.extend(facts.burned_in_flags());
    if let MaskDecision::NotApplied(reason) = &mask {
        engine.report.flags.push(QcFlag::PixelMaskNotApplied { reason: reason.clone() });
    }
    if let MaskDecision::Apply(plan) = &mask {
        engine.report.masked_regions = plan.regions;
        engine.report.masked_frames = plan.frames;
        engine.report.add(PIXEL_DATA, false, Outcome::Masked, "charter pixel mask (Clean Pixel Data)");
    }
    Ok((out, HeaderOutcome { engine, mask }))
}

fn put_str(obj: &mut InMemDicomObject, report: &mut ReportBuilder, tag: Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    report.add(tag, false, Outcome::Written, "written by corelab");
}

const CODE_MEANINGS: &[(&str, &str)] = &[
    ("113100", "Basic Application Confidentiality Profile"),
    ("113101", "Clean Pixel Data Option"),
    ("113105", "Clean Descriptors Option"),
    ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
    ("113109", "Retain Device Identity Option"),
    ("113110", "Retain UIDs Option"),
    ("113111", "Retain Safe Private Option"),
    ("113112", "Retain Institution Identity Option"),
];

/// CID 7050 codes for the profile and options used on this instance.
fn method_codes(ctx: &DeidContext, masked: bool) -> Vec<&'static str> {
    let p = &ctx.profile;
    let mut codes = vec!["113100"];
    if masked {
        codes.push("113101");
    }
    if p.clean_descriptors {
        codes.push("113105");
    }
    match p.dates {
        DateHandling::Keep => codes.push("113106"),
        DateHandling::Shift => codes.push("113107"),
        DateHandling::Remove => {}
    }
    for (on, code) in [
        (p.retain_patient_characteristics, "113108"),
        (p.retain_device_identity, "113109"),
        (p.retain_uids, "113110"),
        (p.retain_safe_private, "113111"),
        (p.retain_institution_identity, "113112"),
    ] {
        if on {
            codes.push(code);
        }
    }
    codes
}

fn finish_top(obj: &mut InMemDicomObject, ctx: &DeidContext, report: &mut ReportBuilder, mask: &MaskDecision) {
    let masked = matches!(mask, MaskDecision::Apply(_));
    put_str(obj, report, Tag(0x0010, 0x0010), VR::PN, &ctx.subject_id);
    put_str(obj, report, Tag(0x0010, 0x0020), VR::LO, &ctx.subject_id);
    put_str(obj, report, Tag(0x0012, 0x0010), VR::LO, &ctx.sponsor_name);
    put_str(obj, report, Tag(0x0012, 0x0020), VR::LO, &ctx.protocol_id);
    if let Some(v) = &ctx.protocol_name {
        put_str(obj, report, Tag(0x0012, 0x0021), VR::LO, v);
    }
    put_str(obj, report, Tag(0x0012, 0x0030), VR::LO, &ctx.site_id);
    if let (true, Some(v)) = (ctx.profile.retain_institution_identity, &ctx.site_name) {
        put_str(obj, report, Tag(0x0012, 0x0031), VR::LO, v);
    }
    put_str(obj, report, Tag(0x0012, 0x0040), VR::LO, &ctx.subject_id);
    if let Some(v) = &ctx.time_point_id {
        put_str(obj, report, Tag(0x0012, 0x0050), VR::LO, v);
    }
    if let Some(v) = &ctx.time_point_description {
        put_str(obj, report, Tag(0x0012, 0x0051), VR::ST, v);
    }
    put_str(obj, report, Tag(0x0012, 0x0062), VR::CS, "YES");
    let codes = method_codes(ctx, masked);
    let meanings: Vec<&str> =
        codes.iter().filter_map(|c| CODE_MEANINGS.iter().find(|(k, _)| k == c).map(|(_, m)| *m)).collect();
    let mut method: Vec<String> = vec![format!("corelab PS3.15 {TABLE_EDITION} Table E.1-1")];
    method.extend(meanings.iter().map(|m| m.to_string()));
    obj.put(DataElement::new(Tag(0x0012, 0x0063), VR::LO, PrimitiveValue::Strs(method.into_iter().collect())));
    report.add(Tag(0x0012, 0x0063), false, Outcome::Written, "written by corelab");
    let items: Vec<InMemDicomObject> = codes
        .iter()
        .zip(meanings.iter())
        .map(|(code, meaning)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(Tag(0x0008, 0x0100), VR::SH, PrimitiveValue::from(*code)),
                DataElement::new(Tag(0x0008, 0x0102), VR::SH, PrimitiveValue::from("DCM")),
                DataElement::new(Tag(0x0008, 0x0104), VR::LO, PrimitiveValue::from(*meaning)),
            ])
        })
        .collect();
    obj.put(DataElement::new(
        Tag(0x0012, 0x0064),
        VR::SQ,
        Value::from(dicom_core::value::DataSetSequence::new(items, Length::UNDEFINED)),
    ));
    report.add(Tag(0x0012, 0x0064), false, Outcome::Written, "written by corelab");
    let temporal = match ctx.profile.dates {
        DateHandling::Shift => "MODIFIED",
        DateHandling::Keep => "UNMODIFIED",
        DateHandling::Remove => "REMOVED",
    };
    put_str(obj, report, Tag(0x0028, 0x0303), VR::CS, temporal);
    if masked {
        put_str(obj, report, Tag(0x0028, 0x0301), VR::CS, "NO");
    }
    report.method_codes = codes.iter().map(|c| c.to_string()).collect();
}

/// The de-identified file meta group: new Media Storage SOP Instance UID (the mapped SOP Instance
/// UID), AE titles and private information dropped, group length recomputed.
pub(crate) fn deid_meta(
    meta: &FileMetaTable,
    mapper: &UidMapper,
    ctx: &DeidContext,
    report: &mut ReportBuilder,
) -> FileMetaTable {
    let mut m = meta.clone();
    let original = OriginalUid::new(&m.media_storage_sop_instance_uid);
    if !ctx.profile.retain_uids && !original.is_standard() && !original.as_str().is_empty() {
        m.media_storage_sop_instance_uid = mapper.map(&original).as_str().to_string();
        report.add(Tag(0x0002, 0x0003), false, Outcome::UidRemapped, "basic U");
    } else if ctx.profile.retain_uids {
        report.add(Tag(0x0002, 0x0003), false, Outcome::KeptByOption, "option RetainUids: K");
    }
    for (tag, field) in [
        (Tag(0x0002, 0x0016), &mut m.source_application_entity_title),
        (Tag(0x0002, 0x0017), &mut m.sending_application_entity_title),
        (Tag(0x0002, 0x0018), &mut m.receiving_application_entity_title),
        (Tag(0x0002, 0x0100), &mut m.private_information_creator_uid),
    ] {
        if field.take().is_some() {
            report.add(tag, false, Outcome::Removed, "file meta: identifies the sending station");
        }
    }
    if m.private_information.take().is_some() {
        report.add(Tag(0x0002, 0x0102), false, Outcome::Removed, "file meta: private information");
    }
    // Bytes outside plain ASCII in the version name (another character set, or garbage) come back
    // from the parser as replacement characters, which would be written longer than the group
    // length says: the output would not parse. The attribute is optional; drop it.
    if m.implementation_version_name.as_deref().is_some_and(|n| !n.bytes().all(|b| (0x20..0x7f).contains(&b))) {
        m.implementation_version_name = None;
        report.add(
            Tag(0x0002, 0x0013),
            false,
            Outcome::Removed,
            "file meta: Implementation Version Name not plain ASCII",
        );
    }
    m.update_information_group_length();
    m
}

/// Pads an odd-length native Pixel Data value or fragment to even length with a zero byte, as the
/// encoding rules ask (dicom-rs would otherwise write an odd length with a padding byte after it).
fn normalize_pixel(e: InMemElement) -> InMemElement {
    let (tag, vr) = (e.tag(), e.vr());
    match e.into_value() {
        Value::Primitive(PrimitiveValue::U8(mut v)) => {
            if v.len() % 2 == 1 {
                v.push(0);
            }
            DataElement::new(tag, vr, Value::from(PrimitiveValue::U8(v)))
        }
        Value::PixelSequence(ps) => {
            let (table, fragments) = ps.into_parts();
            let fragments: Vec<Vec<u8>> = fragments
                .into_iter()
                .map(|mut f| {
                    if f.len() % 2 == 1 {
                        f.push(0);
                    }
                    f
                })
                .collect();
            DataElement::new(
                tag,
                vr,
                Value::PixelSequence(dicom_core::value::PixelFragmentSequence::new(table, fragments)),
            )
        }
        other => DataElement::new(tag, vr, other),
    }
}

fn pixel_encoding(e: &InMemElement, syntax: Syntax) -> PixelEncoding {
    let maskable = e.tag() == PIXEL_DATA
        && (!syntax.explicit || matches!(e.vr(), VR::OB | VR::OW))
        && matches!(
            e.value(),
            Value::Primitive(PrimitiveValue::U8(_) | PrimitiveValue::U16(_)) | Value::PixelSequence(_)
        );
    match e.value() {
        Value::Primitive(p) => PixelEncoding {
            encapsulated: false,
            big_endian: syntax.big_endian,
            value_len: p.calculate_byte_len() as u64,
            maskable,
        },
        Value::PixelSequence(_) | Value::Sequence(_) => {
            PixelEncoding { encapsulated: true, big_endian: syntax.big_endian, value_len: 0, maskable }
        }
    }
}

fn apply_mask_in_memory(e: InMemElement, plan: &pixels::MaskPlan) -> InMemElement {
    let (tag, vr) = (e.tag(), e.vr());
    match e.into_value() {
        Value::Primitive(PrimitiveValue::U8(mut v)) => {
            plan.apply(0, &mut v);
            DataElement::new(tag, vr, Value::from(PrimitiveValue::U8(v)))
        }
        Value::Primitive(PrimitiveValue::U16(v)) => {
            let mut bytes: Vec<u8> = v.iter().flat_map(|w| w.to_le_bytes()).collect();
            plan.apply(0, &mut bytes);
            let words: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            DataElement::new(tag, vr, Value::from(PrimitiveValue::U16(words.into_iter().collect())))
        }
        other => DataElement::new(tag, vr, other),
    }
}

/// De-identifies an in-memory instance. The transfer syntax stays; writing the result with dicom-rs
/// (`write_all`) gives the same bytes as [`deidentify_stream`] on the original file.
pub fn deidentify_object(
    obj: FileDicomObject<InMemDicomObject>,
    ctx: &DeidContext,
) -> Result<(FileDicomObject<InMemDicomObject>, DeidReport), DeidError> {
    ctx.validate()?;
    let meta = obj.meta().clone();
    let (syntax, _ts) = syntax_of(meta.transfer_syntax())?;
    let mut inner = obj.into_inner();
    // The stream path splits at the first of Float, Double Float and Pixel Data; decide the same way.
    let split = [Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009), PIXEL_DATA].into_iter().find(|t| inner.get(*t).is_some());
    let enc = split.and_then(|t| inner.get(t)).map(|p| pixel_encoding(p, syntax));
    let pixel = inner.take(PIXEL_DATA);
    let (mut out, mut outcome) = deid_header(inner, ctx, enc)?;
    if let Some(p) = pixel {
        let p = normalize_pixel(p);
        let p = match &outcome.mask {
            MaskDecision::Apply(plan) => apply_mask_in_memory(p, plan),
            _ => p,
        };
        out.put(p);
    }
    let mapper = outcome.engine.mapper().clone();
    let meta = deid_meta(&meta, &mapper, ctx, &mut outcome.engine.report);
    let report = std::mem::take(&mut outcome.engine.report).build(meta.transfer_syntax());
    Ok((out.with_exact_meta(meta), report))
}

/// Parses a Part 10 file (preamble optional) into a dicom-rs object, with a clear error.
pub fn read_object(bytes: &[u8]) -> Result<FileDicomObject<InMemDicomObject>, DeidError> {
    // Check lengths and structure first: dicom-rs reserves memory for declared lengths.
    stream::check_file(bytes)?;
    let opts = dicom_object::OpenFileOptions::new();
    let opts = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        opts.read_preamble(dicom_object::file::ReadPreamble::Always)
    } else {
        opts.read_preamble(dicom_object::file::ReadPreamble::Never)
    };
    opts.from_reader(bytes).map_err(|e| DeidError::Malformed(e.to_string()))
}
