//! Who may look at which stored images over DICOMweb (QIDO-RS / WADO-RS), and how they see them.
//!
//! Trial managers, QC reviewers and monitors see every study of the trial; site users only their
//! sites' studies; a reader or adjudicator only the studies of their own read tasks (or cases),
//! and blinded: the subject is named by the case code, and no real date is shown (see
//! [`ImageScope::blinding`]). Studies outside the scope do not exist for the caller (404, or
//! absent from search results). Sponsors see no images (403, audited).

use std::collections::{BTreeSet, HashMap};

use corelab_domain::access::Role;
use corelab_store::ingest::{InstanceRow, SeriesRow, StudyRow};
use dicom_core::header::Header;
use dicom_core::value::Value as DicomValue;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{Actor, App, AppError};

/// The blinded identity a reader or adjudicator sees a study under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blinding {
    /// The read case code, shown as Patient ID and Patient's Name.
    pub case_code: String,
}

/// A study the caller may see, and how.
#[derive(Debug, Clone)]
pub struct VisibleStudy {
    pub study: StudyRow,
    /// The site's subject identifier (unblinded callers only).
    pub subject_code: Option<String>,
    /// `Some` when the caller must see the study blinded.
    pub blinding: Option<Blinding>,
}

/// The studies of one trial the caller may see.
#[derive(Debug, Clone)]
pub struct ImageScope {
    pub trial_id: Uuid,
    pub studies: Vec<VisibleStudy>,
}

impl ImageScope {
    /// The visible study with this Study Instance UID, or `NotFound`.
    pub fn study(&self, uid: &str) -> Result<&VisibleStudy, AppError> {
        self.studies
            .iter()
            .find(|s| s.study.study_instance_uid == uid)
            .ok_or_else(|| AppError::NotFound("no such study".into()))
    }
}

const SEES_ALL: [Role; 3] = [Role::TrialManager, Role::QcReviewer, Role::Monitor];

impl App {
    /// The studies of `trial` (default: the API token's trial) the caller may see over DICOMweb.
    pub async fn image_scope(&self, actor: &Actor, trial: Option<Uuid>) -> Result<ImageScope, AppError> {
        let trial_id = match (trial, &actor.token) {
            (Some(t), _) => t,
            (None, Some(scope)) => scope.trial_id,
            (None, None) => {
                return Err(AppError::invalid("trial", "name the trial whose images to search: ?trial=<trial id>"));
            }
        };
        let access = self.trial_access(actor, trial_id).await?;
        let mut tx = self.db().read().await?;
        let mut studies = Vec::new();
        if access.is_system_admin || SEES_ALL.iter().any(|r| access.has(*r)) || access.has(Role::SiteUser) {
            for study in tx.trial_studies(trial_id).await? {
                if !access.can_see_site(&study.site_id) {
                    continue;
                }
                let subject_code = tx.subject(study.subject_id).await?.map(|s| s.subject_id);
                studies.push(VisibleStudy { study, subject_code, blinding: None });
            }
        } else if access.has(Role::Reader) || access.has(Role::Adjudicator) {
            let Some(me) = actor.user_id else {
                return Ok(ImageScope { trial_id, studies });
            };
            // (subject, visit) pairs of the caller's own tasks, with the case code.
            let mut visits: HashMap<(Uuid, String), String> = HashMap::new();
            let mut cases: HashMap<Uuid, (Uuid, String)> = HashMap::new();
            let mut own = Vec::new();
            if access.has(Role::Reader) {
                own.extend(tx.reader_tasks(trial_id, me).await?);
            }
            if access.has(Role::Adjudicator) {
                for adj in tx.trial_adjudications(trial_id).await? {
                    if adj.adjudicator_id == Some(me) {
                        own.extend(tx.case_read_tasks(adj.case_id).await?);
                    }
                }
            }
            for task in own {
                if let std::collections::hash_map::Entry::Vacant(e) = cases.entry(task.case_id) {
                    let case = tx.read_case(task.case_id).await?.ok_or_else(|| AppError::NotFound("no case".into()))?;
                    e.insert((case.subject_id, case.case_code));
                }
                let (subject, code) = cases[&task.case_id].clone();
                visits.insert((subject, task.visit_id), code);
            }
            let subjects: BTreeSet<Uuid> = visits.keys().map(|(s, _)| *s).collect();
            for subject in subjects {
                for study in tx.subject_studies(subject).await? {
                    if let Some(code) = visits.get(&(subject, study.visit_id.clone())) {
                        let blinding = Some(Blinding { case_code: code.clone() });
                        studies.push(VisibleStudy { study, subject_code: None, blinding });
                    }
                }
            }
        } else {
            drop(tx);
            let roles = [Role::TrialManager, Role::QcReviewer, Role::Monitor, Role::SiteUser, Role::Reader];
            return Err(self.deny(actor, Some(trial_id), "view images", "study", "*", &roles).await);
        }
        studies.sort_by(|a, b| a.study.study_instance_uid.cmp(&b.study.study_instance_uid));
        Ok(ImageScope { trial_id, studies })
    }

    /// The series of a visible study.
    pub async fn image_series(&self, study: &VisibleStudy) -> Result<Vec<SeriesRow>, AppError> {
        let mut tx = self.db().read().await?;
        let mut series = tx.study_series(study.study.id).await?;
        series
            .sort_by(|a, b| (a.series_number, &a.series_instance_uid).cmp(&(b.series_number, &b.series_instance_uid)));
        Ok(series)
    }

    /// The instances of a series of a visible study.
    pub async fn image_instances(&self, series: &SeriesRow) -> Result<Vec<InstanceRow>, AppError> {
        let mut tx = self.db().read().await?;
        let mut instances = tx.series_instances(series.id).await?;
        instances
            .sort_by(|a, b| (a.instance_number, &a.sop_instance_uid).cmp(&(b.instance_number, &b.sop_instance_uid)));
        Ok(instances)
    }
}

impl App {
    /// The stored instance as the caller may receive it: the stored Part 10 bytes unchanged for
    /// unblinded callers; for blinded ones re-encoded with the case code as Patient ID and name
    /// and every date (DA, DT) removed.
    pub async fn instance_bytes(&self, study: &VisibleStudy, instance: &InstanceRow) -> Result<Vec<u8>, AppError> {
        let bytes = self.blobs().get_bytes(&instance.blob_key).await.map_err(AppError::internal)?;
        let Some(blinding) = &study.blinding else { return Ok(bytes) };
        let mut file = read_object(&bytes).map_err(AppError::internal)?;
        blind(&mut file, blinding);
        let mut out = Vec::new();
        file.write_all(&mut out).map_err(AppError::internal)?;
        Ok(out)
    }

    /// The instance's header as a DICOM JSON object (PS3.18 F.2), blinded like
    /// [`App::instance_bytes`]. Pixel Data and other bulk data (OB/OW/OF/OD/OL/OV/UN) are given as
    /// a `BulkDataURI` of the instance when `bulk_uri` is set, and left out otherwise.
    pub async fn instance_metadata(
        &self,
        study: &VisibleStudy,
        instance: &InstanceRow,
        bulk_uri: Option<&str>,
    ) -> Result<Value, AppError> {
        let bytes = self.blobs().get_bytes(&instance.blob_key).await.map_err(AppError::internal)?;
        let mut file = read_object(&bytes).map_err(AppError::internal)?;
        if let Some(blinding) = &study.blinding {
            blind(&mut file, blinding);
        }
        Ok(dicom_json(&file, bulk_uri))
    }
}

fn read_object(bytes: &[u8]) -> Result<FileDicomObject<InMemDicomObject>, corelab_dicom::deid::DeidError> {
    corelab_dicom::deid::read_object(bytes)
}

/// What names the site, the site's subject or the real timepoint: never shown blinded.
const SITE_LEVEL: [Tag; 10] = [
    tags::CLINICAL_TRIAL_SITE_ID,
    tags::CLINICAL_TRIAL_SITE_NAME,
    tags::CLINICAL_TRIAL_SUBJECT_ID,
    tags::CLINICAL_TRIAL_TIME_POINT_ID,
    tags::CLINICAL_TRIAL_TIME_POINT_DESCRIPTION,
    tags::CLINICAL_TRIAL_TIME_POINT_TYPE_CODE_SEQUENCE,
    tags::ISSUER_OF_PATIENT_ID,
    // Other Patient IDs (0010,1000), retired from the standard but still sent by some scanners.
    Tag(0x0010, 0x1000),
    tags::OTHER_PATIENT_I_DS_SEQUENCE,
    tags::PATIENT_COMMENTS,
];

/// Puts the case code in place of the subject (Patient ID and name, Clinical Trial Subject
/// Reading ID), removes the site's subject, site and timepoint identifiers, and every date.
fn blind(obj: &mut InMemDicomObject, blinding: &Blinding) {
    strip_dates(obj);
    for tag in SITE_LEVEL {
        obj.remove_element(tag);
    }
    let code = blinding.case_code.as_str();
    obj.put(DataElement::new(tags::CLINICAL_TRIAL_SUBJECT_READING_ID, VR::LO, PrimitiveValue::from(code)));
    obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from(code)));
    obj.put(DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from(code)));
}

fn strip_dates(obj: &mut InMemDicomObject) {
    let dated: Vec<Tag> = obj.iter().filter(|e| matches!(e.vr(), VR::DA | VR::DT)).map(|e| e.tag()).collect();
    for tag in dated {
        obj.remove_element(tag);
    }
    let seqs: Vec<Tag> = obj.iter().filter(|e| e.vr() == VR::SQ).map(|e| e.tag()).collect();
    for tag in seqs {
        obj.update_value(tag, |v| {
            if let Some(items) = v.items_mut() {
                for item in items.iter_mut() {
                    strip_dates(item);
                }
            }
        });
    }
}

const BULK: [VR; 7] = [VR::OB, VR::OW, VR::OF, VR::OD, VR::OL, VR::OV, VR::UN];

/// A dataset in DICOM JSON (PS3.18 F.2).
pub fn dicom_json(obj: &InMemDicomObject, bulk_uri: Option<&str>) -> Value {
    let mut out = Map::new();
    for e in obj.iter() {
        let tag = e.tag();
        let vr = e.vr();
        let key = format!("{:04X}{:04X}", tag.group(), tag.element());
        let mut attr = Map::new();
        attr.insert("vr".into(), json!(vr.to_string()));
        if tag == tags::PIXEL_DATA || BULK.contains(&vr) {
            if let Some(base) = bulk_uri {
                attr.insert("BulkDataURI".into(), json!(format!("{base}/bulkdata/{key}")));
            } else {
                continue;
            }
            out.insert(key, Value::Object(attr));
            continue;
        }
        let values: Vec<Value> = match e.value() {
            DicomValue::Sequence(seq) => seq.items().iter().map(|i| dicom_json(i, None)).collect(),
            DicomValue::PixelSequence(_) => Vec::new(),
            DicomValue::Primitive(p) => primitive_json(vr, p),
        };
        if !values.is_empty() {
            attr.insert("Value".into(), Value::Array(values));
        }
        out.insert(key, Value::Object(attr));
    }
    Value::Object(out)
}

fn primitive_json(vr: VR, p: &PrimitiveValue) -> Vec<Value> {
    if p.multiplicity() == 0 {
        return Vec::new();
    }
    match vr {
        VR::PN => p
            .to_multi_str()
            .iter()
            .map(|s| s.trim_end_matches([' ', '\0']))
            .map(|s| if s.is_empty() { Value::Null } else { json!({"Alphabetic": s}) })
            .collect(),
        VR::IS | VR::SS | VR::US | VR::SL | VR::UL | VR::SV | VR::UV => match p.to_multi_int::<i64>() {
            Ok(v) => v.into_iter().map(Value::from).collect(),
            Err(_) => strings(p),
        },
        VR::DS | VR::FL | VR::FD => match p.to_multi_float64() {
            Ok(v) => {
                v.into_iter().map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)).collect()
            }
            Err(_) => strings(p),
        },
        VR::AT => match p {
            PrimitiveValue::Tags(t) => {
                t.iter().map(|t| json!(format!("{:04X}{:04X}", t.group(), t.element()))).collect()
            }
            _ => strings(p),
        },
        _ => strings(p),
    }
}

fn strings(p: &PrimitiveValue) -> Vec<Value> {
    p.to_multi_str()
        .iter()
        .map(|s| s.trim_end_matches([' ', '\0']))
        .map(|s| if s.is_empty() { Value::Null } else { json!(s) })
        .collect()
}

/// Frames of a stored instance (WADO-RS `frames`), in the syntax they are stored in.
#[derive(Debug, Clone)]
pub struct Frames {
    /// The stored transfer syntax UID.
    pub transfer_syntax: String,
    /// Whether the stored syntax is encapsulated (compressed): then each frame is its fragments'
    /// bytes, otherwise the frame's native pixel bytes.
    pub encapsulated: bool,
    pub frames: Vec<Vec<u8>>,
}

impl App {
    /// The requested frames (numbered from 1) of a visible instance. A frame the instance does
    /// not have is `NotFound`. Pixel data carries no subject identity, so blinded callers get
    /// the same bytes.
    pub async fn instance_frames(&self, instance: &InstanceRow, numbers: &[u32]) -> Result<Frames, AppError> {
        let bytes = self.blobs().get_bytes(&instance.blob_key).await.map_err(AppError::internal)?;
        let file = read_object(&bytes).map_err(AppError::internal)?;
        let no_frame = || AppError::NotFound("the instance has no such frame".into());
        let pixel = file.element(tags::PIXEL_DATA).map_err(|_| no_frame())?;
        let count = file.element(tags::NUMBER_OF_FRAMES).ok().and_then(|e| e.to_int::<u32>().ok()).unwrap_or(1).max(1);
        if numbers.iter().any(|n| *n == 0 || *n > count) {
            return Err(no_frame());
        }
        let (encapsulated, frames) = match pixel.value() {
            DicomValue::PixelSequence(seq) => {
                let fragments = seq.fragments();
                let offsets = seq.offset_table();
                let per_frame: Vec<Vec<u8>> = if fragments.len() as u32 == count {
                    fragments.to_vec()
                } else if count == 1 {
                    vec![fragments.concat()]
                } else if offsets.len() as u32 == count {
                    // Frames start at the offset table's positions in the item stream (each item
                    // has an 8-byte header).
                    let mut starts = Vec::new();
                    let mut at = 0u64;
                    for (i, f) in fragments.iter().enumerate() {
                        starts.push((at, i));
                        at += 8 + f.len() as u64;
                    }
                    let index_of = |o: u32| starts.iter().find(|(s, _)| *s == u64::from(o)).map(|(_, i)| *i);
                    let mut out = Vec::new();
                    for (k, o) in offsets.iter().enumerate() {
                        let first = index_of(*o).ok_or_else(|| AppError::internal(FrameError))?;
                        let last = match offsets.get(k + 1) {
                            Some(n) => index_of(*n).ok_or_else(|| AppError::internal(FrameError))?,
                            None => fragments.len(),
                        };
                        out.push(fragments[first..last].concat());
                    }
                    out
                } else {
                    return Err(AppError::internal(FrameError));
                };
                (true, numbers.iter().map(|n| per_frame[*n as usize - 1].clone()).collect())
            }
            DicomValue::Primitive(p) => {
                let data = p.to_bytes();
                let size = data.len() / count as usize;
                let frames =
                    numbers.iter().map(|n| data[(*n as usize - 1) * size..*n as usize * size].to_vec()).collect();
                (false, frames)
            }
            DicomValue::Sequence(_) => return Err(no_frame()),
        };
        Ok(Frames { transfer_syntax: instance.transfer_syntax.clone(), encapsulated, frames })
    }

    /// The value of a top-level bulk-data element (a `BulkDataURI` of the instance's metadata).
    /// Pixel Data comes as all its frames (see [`App::instance_frames`]); another bulk element
    /// (OB/OW/OF/OD/OL/OV/UN) as one part of its stored bytes. Anything else is `NotFound`.
    /// `tag` is the element's tag as one number (group in the high 16 bits).
    pub async fn instance_bulk(&self, instance: &InstanceRow, tag: u32) -> Result<Frames, AppError> {
        let tag = Tag((tag >> 16) as u16, (tag & 0xFFFF) as u16);
        let bytes = self.blobs().get_bytes(&instance.blob_key).await.map_err(AppError::internal)?;
        let file = read_object(&bytes).map_err(AppError::internal)?;
        let no_bulk = || AppError::NotFound("the instance has no such bulk data element".into());
        if tag == tags::PIXEL_DATA {
            file.element(tags::PIXEL_DATA).map_err(|_| no_bulk())?;
            let count =
                file.element(tags::NUMBER_OF_FRAMES).ok().and_then(|e| e.to_int::<u32>().ok()).unwrap_or(1).max(1);
            drop(file);
            return self.instance_frames(instance, &(1..=count).collect::<Vec<_>>()).await;
        }
        let e = file.element(tag).map_err(|_| no_bulk())?;
        match e.value() {
            DicomValue::Primitive(p) if BULK.contains(&e.vr()) => Ok(Frames {
                transfer_syntax: instance.transfer_syntax.clone(),
                encapsulated: false,
                frames: vec![p.to_bytes().into_owned()],
            }),
            _ => Err(no_bulk()),
        }
    }

    /// A frame (numbered from 1) of a visible instance rendered as an 8-bit PNG: windowed with the
    /// header's first window (or the frame's min–max when it has none), after the modality LUT.
    pub async fn instance_rendered(&self, instance: &InstanceRow, frame: u32) -> Result<Vec<u8>, AppError> {
        use dicom_pixeldata::PixelDecoder;
        let bytes = self.blobs().get_bytes(&instance.blob_key).await.map_err(AppError::internal)?;
        let file = read_object(&bytes).map_err(AppError::internal)?;
        let no_frame = || AppError::NotFound("the instance has no such frame".into());
        if frame == 0 {
            return Err(no_frame());
        }
        let decoded = file.decode_pixel_data_frame(frame - 1).map_err(|_| no_frame())?;
        let pixels: Vec<u8> = if decoded.samples_per_pixel() == 1 {
            // After the modality LUT; windowed by the header's first window, else min-max.
            let values: Vec<f64> = decoded.to_vec_frame(0).map_err(AppError::internal)?;
            let window = decoded.window().ok().flatten().and_then(|w| w.first().map(|w| (w.center, w.width)));
            let inverted = file
                .element(tags::PHOTOMETRIC_INTERPRETATION)
                .ok()
                .and_then(|e| e.to_str().ok())
                .is_some_and(|p| p.trim() == "MONOCHROME1");
            grey_8bit(&values, window, inverted)
        } else {
            decoded.to_vec_frame(0).map_err(AppError::internal)?
        };
        let (rows, cols, samples) = (decoded.rows(), decoded.columns(), decoded.samples_per_pixel());
        if samples != 1 && samples != 3 {
            return Err(AppError::internal(FrameError));
        }
        Ok(png(cols, rows, samples == 3, &pixels))
    }
}

/// Grey values (after the modality LUT) to 8 bits: windowed by (center, width) as PS3.3 C.11.2.1.2
/// says, else stretched min–max; MONOCHROME1 (the minimum is white) inverted so that what shows
/// is what the modality meant.
fn grey_8bit(values: &[f64], window: Option<(f64, f64)>, monochrome1: bool) -> Vec<u8> {
    let (low, high) = match window {
        Some((c, w)) if w >= 1.0 => (c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0),
        _ => values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v))),
    };
    let span = high - low;
    values
        .iter()
        .map(|v| if span > 0.0 { ((v - low) / span * 255.0).round().clamp(0.0, 255.0) as u8 } else { 0 })
        .map(|g| if monochrome1 { 255 - g } else { g })
        .collect()
}

#[derive(Debug)]
struct FrameError;

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the stored pixel data cannot be split into its frames")
    }
}

impl std::error::Error for FrameError {}

/// An 8-bit grayscale or RGB PNG of `pixels` (row-major), zlib with stored (uncompressed) blocks.
fn png(width: u32, height: u32, rgb: bool, pixels: &[u8]) -> Vec<u8> {
    let channels = if rgb { 3 } else { 1 };
    let row = width as usize * channels;
    let mut raw = Vec::with_capacity((row + 1) * height as usize);
    for r in 0..height as usize {
        raw.push(0); // filter: none
        let start = (r * row).min(pixels.len());
        let end = ((r + 1) * row).min(pixels.len());
        raw.extend_from_slice(&pixels[start..end]);
        raw.resize(raw.len() + row - (end - start), 0);
    }
    let mut z = vec![0x78, 0x01];
    let mut chunks = raw.chunks(65_535).peekable();
    while let Some(c) = chunks.next() {
        z.push(u8::from(chunks.peek().is_none()));
        let len = c.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(c);
    }
    if raw.is_empty() {
        z.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in &raw {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8; 4], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    };
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, if rgb { 2 } else { 0 }, 0, 0, 0]);
    chunk(b"IHDR", &header);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::grey_8bit;

    #[test]
    fn grey_values_are_windowed_and_monochrome1_is_inverted() {
        // Window 40/400 (soft tissue): -160 and below black, 240 and above white.
        let v = [-1000.0, -160.0, 40.0, 240.0, 3000.0];
        let g = grey_8bit(&v, Some((40.0, 400.0)), false);
        assert_eq!((g[0], g[1], g[4]), (0, 0, 255));
        assert!((127..=128).contains(&g[2]), "{g:?}");
        assert_eq!(grey_8bit(&v, Some((40.0, 400.0)), true), g.iter().map(|x| 255 - x).collect::<Vec<_>>());
        // No window: min-max.
        assert_eq!(grey_8bit(&[10.0, 20.0], None, false), vec![0, 255]);
        assert_eq!(grey_8bit(&[10.0, 20.0], None, true), vec![255, 0]);
        // A flat image is black, not a division by zero.
        assert_eq!(grey_8bit(&[5.0, 5.0], None, false), vec![0, 0]);
    }

    #[test]
    fn png_has_signature_chunks_and_valid_stored_deflate() {
        let p = super::png(3, 2, false, &[0, 128, 255, 1, 2, 3]);
        assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&p[12..16], b"IHDR");
        assert_eq!(&p[p.len() - 8..p.len() - 4], b"IEND");
    }
}
