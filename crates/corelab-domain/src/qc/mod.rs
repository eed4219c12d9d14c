//! Automated QC: a visit's header facts checked against the charter.
//!
//! Entry point: [`evaluate_visit`] (charter, visit ID, visit window, the visit's [`VisitFacts`], the
//! subject's baseline facts) -> [`QcResult`]: [`Finding`]s, each with a [`Severity`], a stable
//! [`Rule`] id, the charter series and the received series, expected and found values with units and
//! a message for the site, plus an automated [`Verdict`].
//!
//! Facts come from the stored, de-identified headers (`corelab-dicom::facts`), plus what only the
//! caller knows: the real acquisition date (captured before de-identification), the pixel decode
//! outcome and the de-identification report's burned-in flags. What de-identification removes is
//! treated as unknown, never as wrong: series descriptions survive only through the charter's
//! descriptor allow-list (or a Clinical Trial Series ID identifies the series), station name and
//! serial number only with `retain_device_identity`, and the Basic Profile empties the contrast
//! agent.
//!
//! Rules (ids in [`Rule`]; details on each check's function):
//! - series: required series present, nothing unexpected, ambiguous or repeated assignments, the
//!   `one_of` choice and keeping the baseline's choice (`identify.rs` says how series are recognised);
//! - per series: modality, body part, slice thickness / spacing / gap, missing slices, uneven
//!   spacing and duplicates from Image Position (Patient) along the slice normal (`geometry.rs`),
//!   pixel spacing, matrix, kVp, contrast presence, phase and delay (`contrast.rs`), MR field
//!   strength, sequence type (`mr.rs`) and 2D/3D, same scanner and parameters within tolerance of the
//!   baseline;
//! - every stored series: de-identification marking, burned-in PHI flags, pixel data decodable;
//! - the visit: acquisition date inside the window.
//!
//! Severity policy: a value that breaks a charter limit is an error; a value QC needs but cannot
//! find or interpret is a warning ("not recorded", "not determinable"), so QC review looks at it.
//! Labels, extra series and possible burned-in text are warnings too. Pure: no IO, no clock.

mod contrast;
mod engine;
mod facts;
mod finding;
mod geometry;
mod identify;
mod mr;
mod text;
mod view;

pub use contrast::agent_says_none as contrast_agent_says_none;
pub use engine::evaluate_visit;
pub use facts::{BurnedInFlag, HeaderDates, InstanceFacts, PixelDecode, PixelSpacing, SeriesFacts, VisitFacts};
pub use finding::{Finding, IdentifiedBy, QcResult, Rule, SeriesMatch, Severity, Verdict, VisitWindow};

/// The field strength QC compares, in tesla: gauss values converted, values within 5 % of a nominal
/// strength (1.5 T, 3 T, ...) read as that strength.
pub fn nominal_field_strength_t(recorded: f64) -> f64 {
    engine::nominal_tesla(recorded)
}
