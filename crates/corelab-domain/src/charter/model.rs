//! The typed imaging charter. Field names are the TOML keys (see `docs/charter.md`), so a key path
//! in a [`Problem`](super::Problem) and a field path in a [`Change`](super::Change) read the same.
//!
//! A `Charter` is only ever handed out by [`parse_charter`](super::parse_charter) after validation,
//! so the invariants documented on each type hold for every value a caller sees. The TOML text is
//! the stored form of a charter version; `Serialize` gives a JSON view for APIs and diffs.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::pattern::SubjectIdPattern;
use crate::deid_profile::DeidProfile;

/// A closed set of values written as fixed strings in the charter. `ALL` and `as_str` are the one
/// source of the spelling, used by the reader, `Serialize` and `Display`.
macro_rules! choice {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The spelling used in the charter file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value spelled exactly `text`, if any.
            pub fn from_charter_str(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// (spelling, value) pairs for the reader.
            pub(crate) fn options() -> Vec<(&'static str, $name)> {
                Self::ALL.iter().map(|v| (v.as_str(), *v)).collect()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// The charter file format this code reads (`format = 1`).
pub const FORMAT_VERSION: u32 = 1;

/// One version of a trial's imaging charter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Charter {
    /// File format version, always [`FORMAT_VERSION`].
    pub format: u32,
    /// The document's own version label, e.g. "2.0"; an amendment is a new version.
    pub version: String,
    pub trial: Trial,
    pub dimse: Dimse,
    pub sites: Vec<Site>,
    pub subjects: Subjects,
    /// Treatment arms: visible only to unblinded roles (see [`Charter::without_arms`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arms: Vec<Arm>,
    pub schedule: Schedule,
    /// Visit definitions as written; [`Charter::scheduled_visits`] expands repeats.
    pub visits: Vec<VisitDefinition>,
    pub imaging: Vec<ImagingRequirement>,
    pub deidentification: DeidProfile,
    pub qc: Qc,
    pub reads: ReadDesign,
}

/// Trial identity, as written into the DICOM Clinical Trial Subject module after de-identification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trial {
    /// Clinical Trial Sponsor Name (0012,0010).
    pub sponsor: String,
    /// Clinical Trial Protocol ID (0012,0020).
    pub protocol_id: String,
    /// Clinical Trial Protocol Name (0012,0021).
    pub protocol_name: String,
    pub therapeutic_area: TherapeuticArea,
    pub blinding: Blinding,
}

choice! {
    pub enum TherapeuticArea {
        Oncology = "oncology",
        Cardiology = "cardiology",
        Neurology = "neurology",
        Other = "other",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blinding {
    /// Readers never see scan dates.
    pub readers_blinded_to_dates: bool,
    /// How timepoints are labelled for readers.
    pub timepoint_labels: TimepointLabels,
    /// Sponsor staff see no arm-level or per-subject results.
    pub sponsor_blinded: bool,
}

choice! {
    pub enum TimepointLabels {
        /// Pseudo-timepoints (TP1, TP2, ...) in chronological order, no visit names or days.
        Pseudo = "pseudo",
        /// The charter's visit labels ("Week 8").
        VisitLabel = "visit_label",
        /// Days from baseline ("Day 56").
        DaysFromBaseline = "days_from_baseline",
    }
}

/// DIMSE settings: the called AE title(s) under which corelab receives this trial's images. A
/// called AE identifies the trial (unique across trials: checked by the app, not here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dimse {
    pub called_ae_titles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    /// Clinical Trial Site ID (0012,0030); `[A-Za-z0-9_-]`, 1-16 characters.
    pub id: String,
    pub name: String,
    /// ISO 3166-1 alpha-2 code, upper case.
    pub country: String,
    /// Calling AE titles this site's modalities/PACS send from; unique across sites.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ae_titles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subjects {
    /// e.g. `{site}-{nnn}`: see [`SubjectIdPattern`].
    pub id_pattern: SubjectIdPattern,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arm {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The day-0 event every visit day and window is counted from.
    pub anchor: Anchor,
    pub unscheduled_visits_allowed: bool,
}

choice! {
    pub enum Anchor {
        Enrollment = "enrollment",
        Randomization = "randomization",
    }
}

/// One `[[visits]]` entry: a single visit or a rule that generates several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitDefinition {
    /// Visit ID, used as Clinical Trial Time Point ID (0012,0050). For entries that generate
    /// several visits it holds `{week}` or `{day}`, e.g. `W{week}`.
    pub id: String,
    /// Human label; may hold the same placeholders.
    pub label: String,
    pub timing: VisitTiming,
    pub window: Window,
    /// IDs of `[[imaging]]` requirements expected at this visit.
    pub imaging: Vec<String>,
    pub imaging_rule: ImagingRule,
    /// Optional subset of series IDs expected at this visit; empty = every series of the
    /// referenced imaging requirements.
    pub series: Vec<String>,
}

/// When a visit happens, in days from the schedule anchor (day 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitTiming {
    /// `baseline = true`: day 0; the window is the baseline window around the anchor.
    Baseline,
    /// `day = N`.
    Day(i32),
    /// `days = [..]`: one visit per listed day.
    Days(Vec<i32>),
    /// `every_weeks = N`, `from_week` (default N), `until_week` (inclusive).
    EveryWeeks { every_weeks: u32, from_week: u32, until_week: u32 },
}

impl Serialize for VisitDefinition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("label", &self.label)?;
        match &self.timing {
            VisitTiming::Baseline => map.serialize_entry("baseline", &true)?,
            VisitTiming::Day(day) => map.serialize_entry("day", day)?,
            VisitTiming::Days(days) => map.serialize_entry("days", days)?,
            VisitTiming::EveryWeeks { every_weeks, from_week, until_week } => {
                map.serialize_entry("every_weeks", every_weeks)?;
                map.serialize_entry("from_week", from_week)?;
                map.serialize_entry("until_week", until_week)?;
            }
        }
        map.serialize_entry("window", &self.window)?;
        map.serialize_entry("imaging", &self.imaging)?;
        map.serialize_entry("imaging_rule", &self.imaging_rule)?;
        if !self.series.is_empty() {
            map.serialize_entry("series", &self.series)?;
        }
        map.end()
    }
}

/// A visit window around the nominal day: it opens `minus_days` before and closes `plus_days`
/// after. Either may be negative (e.g. a baseline window that must close the day before day 0),
/// but the window never ends before it starts (`minus_days + plus_days >= 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub minus_days: i32,
    pub plus_days: i32,
}

impl Window {
    /// First day of the window for a visit on `day`.
    pub fn opens(&self, day: i32) -> i32 {
        day.saturating_sub(self.minus_days)
    }
    /// Last day of the window (inclusive) for a visit on `day`.
    pub fn closes(&self, day: i32) -> i32 {
        day.saturating_add(self.plus_days)
    }
}

choice! {
    /// How a visit's imaging list is satisfied.
    pub enum ImagingRule {
        /// Every listed requirement is expected.
        All = "all",
        /// Exactly one of them (e.g. echo or cardiac MR); a subject keeps the one chosen at baseline.
        OneOf = "one_of",
    }
}

/// What to acquire: one modality on one body region, as a set of expected series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImagingRequirement {
    pub id: String,
    pub modality: Modality,
    /// Human description of the region, e.g. "chest, abdomen and pelvis".
    pub body_region: String,
    /// Accepted Body Part Examined (0018,0015) values; empty = not checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub body_part_examined: Vec<String>,
    pub series: Vec<SeriesSpec>,
}

choice! {
    /// DICOM Modality (0008,0060) values a charter can require.
    pub enum Modality {
        Ct = "CT",
        Mr = "MR",
        Pt = "PT",
        Nm = "NM",
        Us = "US",
        Dx = "DX",
        Cr = "CR",
        Mg = "MG",
        Xa = "XA",
    }
}

/// One expected series: how to recognise it in the headers and what its acquisition must meet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesSpec {
    /// Unique across the whole charter; written to Clinical Trial Series ID (0012,0071).
    pub id: String,
    pub description: String,
    /// A missing required series is a QC finding; a missing optional one is not.
    pub required: bool,
    pub identify: SeriesIdentification,
    pub constraints: AcquisitionConstraints,
}

/// How the QC engine recognises this series among those received. Every given criterion must
/// hold; a list of patterns holds when any pattern matches. Patterns are case-insensitive globs
/// (`*` any run, `?` one character), see [`glob_matches`](super::glob_matches).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SeriesIdentification {
    /// Patterns for Series Description (0008,103E).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series_description: Vec<String>,
    /// Patterns for Protocol Name (0018,1030).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protocol_name: Vec<String>,
    /// Values that must all appear in Image Type (0008,0008), e.g. ["ORIGINAL", "PRIMARY"].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_type: Vec<String>,
    /// With (true) or without (false) a contrast agent (0018,0010) present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contrast: Option<bool>,
}

impl SeriesIdentification {
    pub fn is_empty(&self) -> bool {
        self.series_description.is_empty()
            && self.protocol_name.is_empty()
            && self.image_type.is_empty()
            && self.contrast.is_none()
    }
}

/// Acquisition constraints a series must meet: typed, with units in the names, for the QC engine
/// to compare header facts against. Absent = not checked.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AcquisitionConstraints {
    /// Slice Thickness (0018,0050).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice_thickness_mm: Option<Range>,
    /// Centre-to-centre distance of adjacent slices (Spacing Between Slices (0018,0088) or from
    /// Image Position (Patient)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice_spacing_mm: Option<Range>,
    /// Spacing minus thickness: 0 = contiguous, negative = overlapping slices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice_gap_mm: Option<Range>,
    /// In-plane Pixel Spacing (0028,0030), both directions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_spacing_mm: Option<Range>,
    /// Smallest acceptable min(Rows, Columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix_min: Option<u32>,
    /// KVP (0018,0060); CT and projection modalities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kvp: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contrast: Option<ContrastRule>,
    /// Magnetic Field Strength (0018,0087) in tesla; MR only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_strength_t: Option<Range>,
    /// MR only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_sequence: Option<MrSequence>,
    /// MR Acquisition Type (0018,0023); MR only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_acquisition: Option<MrAcquisition>,
    /// Follow-up series must come from the scanner that acquired the subject's baseline.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub same_scanner_as_baseline: bool,
    /// Largest allowed absolute difference from the subject's baseline series.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_tolerance: Option<BaselineTolerance>,
}

/// An inclusive range; at least one bound is present.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Range {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Range {
    /// Whether `value` lies within the bounds (inclusive).
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContrastRule {
    pub agent: ContrastAgent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<ContrastPhase>,
    /// Minimum delay between injection and acquisition (e.g. 5 minutes for Gd-enhanced T1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_delay_minutes: Option<u32>,
}

choice! {
    pub enum ContrastAgent {
        Required = "required",
        Forbidden = "forbidden",
        Optional = "optional",
    }
}

choice! {
    pub enum ContrastPhase {
        Arterial = "arterial",
        PortalVenous = "portal_venous",
        Delayed = "delayed",
    }
}

choice! {
    pub enum MrSequence {
        T1 = "T1",
        T2 = "T2",
        Pd = "PD",
        Flair = "FLAIR",
        Dwi = "DWI",
        Swi = "SWI",
        T2Star = "T2_STAR",
        CineSsfp = "CINE_SSFP",
        Lge = "LGE",
        T1Map = "T1_MAP",
        T2Map = "T2_MAP",
        Perfusion = "PERFUSION",
        Mra = "MRA",
    }
}

choice! {
    pub enum MrAcquisition {
        TwoD = "2D",
        ThreeD = "3D",
    }
}

/// Comparable-to-baseline tolerances (absolute differences); at least one is present.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct BaselineTolerance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice_thickness_mm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_spacing_mm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kvp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_strength_t: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Qc {
    pub stages: QcStages,
}

choice! {
    pub enum QcStages {
        Automated = "automated",
        AutomatedQc1 = "automated+qc1",
        AutomatedQc1Qc2 = "automated+qc1+qc2",
    }
}

impl QcStages {
    /// A human QC1 review follows the automated checks.
    pub fn has_qc1(self) -> bool {
        !matches!(self, QcStages::Automated)
    }
    /// A second human review (QC2) follows QC1.
    pub fn has_qc2(self) -> bool {
        matches!(self, QcStages::AutomatedQc1Qc2)
    }
}

/// How images are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadDesign {
    pub criteria: Vec<Criteria>,
    /// 1 (single read) or 2 (double read).
    pub readers_per_case: u8,
    pub paradigm: ReadParadigm,
    /// None = no adjudication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjudication: Option<Adjudication>,
    /// RECIST/iRECIST: the minimum days from baseline (inclusive) for an SD to count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sd_min_days: Option<u32>,
    /// RECIST/iRECIST: CR/PR must be confirmed.
    pub confirmation_required: bool,
    /// Days after the first CR/PR at which the confirming assessment may be; 28 when
    /// confirmation is required and the key is absent, None otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation_min_days: Option<u32>,
    /// What readers measure (MS and LVEF reads); empty for RECIST/iRECIST.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<Measure>,
    pub reader_qualifications: ReaderQualifications,
}

impl ReadDesign {
    /// Whether the read uses RECIST 1.1 or iRECIST.
    pub fn is_recist_family(&self) -> bool {
        self.criteria.iter().any(|c| matches!(c, Criteria::Recist11 | Criteria::Irecist))
    }
}

choice! {
    pub enum Criteria {
        Recist11 = "RECIST1.1",
        Irecist = "iRECIST",
        Lvef = "LVEF",
        Ms = "MS",
    }
}

choice! {
    pub enum ReadParadigm {
        /// Timepoints in chronological order, each locked once submitted.
        SequentialLocked = "sequential_locked",
        /// All timepoints of a subject reviewed together.
        AllTimepoints = "all_timepoints",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adjudication {
    /// Variables whose disagreement between the two readers sends the case to adjudication.
    pub triggers: Vec<AdjudicationTrigger>,
    /// Whether the adjudicator picks one reader for the whole subject or per variable.
    pub choice: AdjudicationChoice,
    /// LVEF reads: EFs more than this many percentage points apart disagree (None: 5.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ef_tolerance_points: Option<crate::response::Tenths>,
}

choice! {
    pub enum AdjudicationTrigger {
        AnyTimepoint = "any_timepoint",
        ProgressionDate = "progression_date",
        BestOverallResponse = "best_overall_response",
    }
}

choice! {
    pub enum AdjudicationChoice {
        PerSubject = "per_subject",
        PerVariable = "per_variable",
    }
}

choice! {
    /// Quantities read for MS and LVEF criteria.
    pub enum Measure {
        GdEnhancingLesions = "gd_enhancing_lesions",
        NewEnlargingT2Lesions = "new_enlarging_t2_lesions",
        T2LesionVolume = "t2_lesion_volume",
        T1HypointenseLesions = "t1_hypointense_lesions",
        BrainVolumeChange = "brain_volume_change",
        Lvef = "lvef",
        LvEdv = "lv_edv",
        LvEsv = "lv_esv",
    }
}

impl Measure {
    /// The criteria this measure belongs to.
    pub fn criteria(self) -> Criteria {
        match self {
            Measure::GdEnhancingLesions
            | Measure::NewEnlargingT2Lesions
            | Measure::T2LesionVolume
            | Measure::T1HypointenseLesions
            | Measure::BrainVolumeChange => Criteria::Ms,
            Measure::Lvef | Measure::LvEdv | Measure::LvEsv => Criteria::Lvef,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReaderQualifications {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub therapeutic_area: Option<TherapeuticArea>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub criteria: Vec<Criteria>,
    /// Readers must hold current training on protocol, criteria and charter.
    pub training_current: bool,
}

impl Charter {
    pub fn site(&self, site_id: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.id == site_id)
    }

    /// The site that sends from `calling_ae` (compared as AE titles are: surrounding spaces are
    /// not significant; case-insensitive, as the uniqueness check).
    pub fn site_for_ae_title(&self, calling_ae: &str) -> Option<&Site> {
        let wanted = calling_ae.trim();
        self.sites.iter().find(|s| s.ae_titles.iter().any(|ae| ae.trim().eq_ignore_ascii_case(wanted)))
    }

    /// Whether `called_ae` is one of this trial's called AE titles.
    pub fn is_called_ae_title(&self, called_ae: &str) -> bool {
        let wanted = called_ae.trim();
        self.dimse.called_ae_titles.iter().any(|ae| ae.trim().eq_ignore_ascii_case(wanted))
    }

    /// Whether `subject_id` is a valid subject ID for `site_id` under the charter's pattern.
    pub fn subject_id_matches(&self, site_id: &str, subject_id: &str) -> bool {
        self.site(site_id).is_some() && self.subjects.id_pattern.matches(site_id, subject_id)
    }

    /// The site whose pattern `subject_id` follows, if exactly one does.
    pub fn site_for_subject(&self, subject_id: &str) -> Option<&Site> {
        let mut found = self.sites.iter().filter(|s| self.subjects.id_pattern.matches(&s.id, subject_id));
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    pub fn imaging_requirement(&self, id: &str) -> Option<&ImagingRequirement> {
        self.imaging.iter().find(|r| r.id == id)
    }

    /// A series by ID, with the imaging requirement that holds it.
    pub fn series(&self, id: &str) -> Option<(&ImagingRequirement, &SeriesSpec)> {
        self.imaging.iter().find_map(|r| r.series.iter().find(|s| s.id == id).map(|s| (r, s)))
    }

    /// The charter as blinded roles may see it: the same, without treatment arms.
    pub fn without_arms(&self) -> Charter {
        Charter { arms: Vec::new(), ..self.clone() }
    }
}
