//! What QC reports: findings, the verdict, and which charter series each received series was taken for.

use serde::Serialize;

use crate::charter::{Date, PlannedVisit};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The visit does not meet the charter: the automated verdict is fail.
    Error,
    /// Could not be checked, or probably fine but worth a look in QC review.
    Warning,
}

macro_rules! rules {
    ($($(#[$meta:meta])* $variant:ident = $text:literal,)+) => {
        /// The rule a finding comes from. The string ids are stable: stored with findings and used
        /// by the API and the UI.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($(#[$meta])* $variant,)+
        }

        impl Rule {
            /// Every rule, in reporting order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)+];

            /// The stable id, e.g. `slice_thickness`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Rule::$variant => $text,)+
                }
            }

            /// The rule whose id is `id`.
            pub fn from_id(id: &str) -> Option<Rule> {
                Rule::ALL.iter().copied().find(|r| r.as_str() == id)
            }
        }
    };
}

rules! {
    /// The visit ID is not in the charter's schedule (unscheduled visit).
    Visit = "visit",
    /// The real acquisition date lies outside the visit window, or is not known.
    VisitWindow = "visit_window",
    /// A required series of the visit was not received.
    RequiredSeries = "required_series",
    /// A received series is not one the visit asks for.
    UnexpectedSeries = "unexpected_series",
    /// A received series fits several charter series; QC had to choose.
    AmbiguousSeries = "ambiguous_series",
    /// Several received series were taken for the same charter series.
    RepeatedSeries = "repeated_series",
    /// A `one_of` visit: series of several alternatives, none, or not the subject's baseline choice.
    ImagingChoice = "imaging_choice",
    /// Modality (0008,0060) is not the requirement's modality.
    Modality = "modality",
    /// Body Part Examined (0018,0015) is not one the requirement accepts.
    BodyPart = "body_part",
    /// Slice Thickness (0018,0050) outside `slice_thickness_mm`.
    SliceThickness = "slice_thickness",
    /// Centre-to-centre slice spacing outside `slice_spacing_mm`.
    SliceSpacing = "slice_spacing",
    /// Spacing minus thickness outside `slice_gap_mm`.
    SliceGap = "slice_gap",
    /// Gaps in the slice positions larger than 1.5 times the usual spacing.
    MissingSlices = "missing_slices",
    /// Slice positions not evenly spaced.
    UnevenSpacing = "uneven_spacing",
    /// Several images at the same slice position (and same phase/echo).
    DuplicateSlices = "duplicate_slices",
    /// Slice positions could not be checked (multi-frame, missing or mixed geometry).
    SliceGeometry = "slice_geometry",
    /// Pixel Spacing (0028,0030) outside `pixel_spacing_mm`.
    PixelSpacing = "pixel_spacing",
    /// min(Rows, Columns) below `matrix_min`.
    Matrix = "matrix",
    /// KVP (0018,0060) outside `kvp`.
    Kvp = "kvp",
    /// Contrast given when forbidden, missing when required, or not determinable.
    Contrast = "contrast",
    /// Contrast phase not the one the charter names, or not determinable.
    ContrastPhase = "contrast_phase",
    /// Time from injection to acquisition below `min_delay_minutes`, or not determinable.
    ContrastDelay = "contrast_delay",
    /// Magnetic Field Strength (0018,0087) outside `field_strength_t`.
    FieldStrength = "field_strength",
    /// MR sequence type not the charter's `mr_sequence`, or not determinable.
    MrSequence = "mr_sequence",
    /// MR Acquisition Type (0018,0023) not the charter's `mr_acquisition`.
    MrAcquisition = "mr_acquisition",
    /// Not the scanner of the subject's baseline (manufacturer, model, station, serial).
    SameScanner = "same_scanner",
    /// A parameter differs from the subject's baseline by more than `baseline_tolerance`.
    BaselineParameters = "baseline_parameters",
    /// Patient Identity Removed is not YES or the de-identification method codes are missing.
    Deidentification = "deidentification",
    /// The pixels may hold burned-in PHI.
    BurnedInPhi = "burned_in_phi",
    /// The pixel data could not be decoded.
    PixelData = "pixel_data",
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing QC found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub rule: Rule,
    /// The charter series concerned (ID), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charter_series_id: Option<String>,
    /// The received series concerned (Series Instance UID as stored), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_instance_uid: Option<String>,
    /// What the charter asks for, with units ("at most 5.0 mm").
    pub expected: String,
    /// What the images show, with units ("7.0 mm"), or "not recorded".
    pub found: String,
    /// A plain-language message for the site: what is wrong and what to do.
    pub message: String,
}

/// The automated verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    PassWithWarnings,
    Fail,
}

impl Verdict {
    /// Fail with any error, pass with warnings with any warning, else pass.
    pub fn of(findings: &[Finding]) -> Verdict {
        if findings.iter().any(|f| f.severity == Severity::Error) {
            Verdict::Fail
        } else if findings.is_empty() {
            Verdict::Pass
        } else {
            Verdict::PassWithWarnings
        }
    }
}

/// How a received series was matched to a charter series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifiedBy {
    /// Clinical Trial Series ID (0012,0071) names the charter series.
    ClinicalTrialSeriesId,
    /// The charter series' `identify` rules hold, and no other expected series' do.
    Headers,
    /// Several charter series' rules hold; QC chose one (see the `ambiguous_series` finding).
    Choice,
    /// No expected charter series fits.
    Unmatched,
}

/// What QC took a received series for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesMatch {
    pub series_instance_uid: String,
    /// None when the series matched no expected charter series.
    pub charter_series_id: Option<String>,
    pub identified_by: IdentifiedBy,
    /// Distinct instances received.
    pub instances: usize,
}

/// The result of QC for one visit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QcResult {
    pub visit_id: String,
    pub verdict: Verdict,
    /// Visit-level findings first, then per received series in the order received, then missing
    /// series.
    pub findings: Vec<Finding>,
    pub series: Vec<SeriesMatch>,
}

impl QcResult {
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Error)
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Warning)
    }
}

/// The dates a visit's images must be acquired in, inclusive (from the subject's
/// [`VisitCalendar`](crate::charter::VisitCalendar)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VisitWindow {
    pub opens: Date,
    pub closes: Date,
}

impl VisitWindow {
    pub fn contains(&self, date: Date) -> bool {
        self.opens <= date && date <= self.closes
    }
}

impl From<&PlannedVisit> for VisitWindow {
    fn from(v: &PlannedVisit) -> VisitWindow {
        VisitWindow { opens: v.window_open, closes: v.window_close }
    }
}
