//! Whether a series was acquired with contrast, in which phase and how long after injection.
//!
//! Order of evidence for presence:
//! 1. Contrast/Bolus Agent (0018,0010) with a value: present, unless it says none ("NONE", "NO", ...);
//! 2. what the caller captured from the original header before de-identification
//!    (`original_contrast_agent_recorded`);
//! 3. Contrast/Bolus Route, Ingredient, or a Volume above 0: present (volume 0: absent);
//! 4. no Contrast/Bolus Agent attribute at all: absent (PS3.3 requires the Contrast/Bolus module
//!    whenever contrast was used; de-identification empties the agent but never removes it);
//! 5. the agent present but empty (what the Basic Profile leaves): the descriptors' words decide
//!    ("POST", "GD", "C+", phase words for contrast; "PRE", "NATIVE", "NON CONTRAST" for none);
//! 6. otherwise unknown.
//!
//! Phase: words in the descriptors (arterial, portal venous, delayed), else the time from Contrast/
//! Bolus Start Time to Acquisition Time: 15-45 s arterial, 50-100 s portal venous, 180 s or more
//! delayed; anything else is undetermined.

use super::view::{SeriesView, words};
use crate::charter::ContrastPhase;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    Present,
    Absent,
    Unknown,
}

/// Presence and the evidence for it, in words for the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContrastEvidence {
    pub presence: Presence,
    pub evidence: String,
}

const NONE_VALUES: &[&str] = &["NONE", "NO", "N/A", "NA", "NIL", "0", "-", "NO CONTRAST", "WITHOUT CONTRAST"];
const ABSENT_PHRASES: &[&str] = &[
    "NON CONTRAST",
    "NON-CONTRAST",
    "NONCONTRAST",
    "NON CON",
    "NONCON",
    "WITHOUT",
    "UNENHANCED",
    "W/O",
    "NO CONTRAST",
];
const ABSENT_WORDS: &[&str] = &["PRE", "NATIVE", "NC", "PLAIN", "WO", "PRECONTRAST"];
const PRESENT_WORDS: &[&str] = &[
    "POST",
    "GAD",
    "GD",
    "GADO",
    "GADOLINIUM",
    "CE",
    "C+",
    "+C",
    "CONTRAST",
    "ENHANCED",
    "PORTAL",
    "PV",
    "PVP",
    "VENOUS",
    "ARTERIAL",
    "ART",
    "DELAYED",
    "POSTCONTRAST",
];

/// Whether a Contrast/Bolus Agent value says no agent was given ("NONE", "NO", "N/A", ...).
pub fn agent_says_none(agent: &str) -> bool {
    NONE_VALUES.contains(&agent.trim().to_ascii_uppercase().as_str())
}

/// Some(true) when the descriptor's words say contrast, Some(false) when they say none, None when
/// they say neither or both.
fn descriptor_hint(text: &str) -> Option<bool> {
    let upper = text.to_ascii_uppercase();
    let absent_phrase = ABSENT_PHRASES.iter().any(|p| upper.contains(p));
    let ws = words(text);
    let absent = absent_phrase || ws.iter().any(|w| ABSENT_WORDS.contains(&w.as_str()));
    let present = ws.iter().any(|w| {
        (PRESENT_WORDS.contains(&w.as_str()) && !(absent_phrase && w == "CONTRAST"))
            || w.ends_with("+C")
            || w.ends_with("+GD")
            || w.ends_with("+GAD")
    });
    match (present, absent) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

pub(crate) fn presence(v: &SeriesView) -> ContrastEvidence {
    let found = |presence, evidence: String| ContrastEvidence { presence, evidence };
    if let Some(agent) = v.text(|i| &i.contrast_agent) {
        if agent_says_none(agent) {
            return found(Presence::Absent, format!("the contrast agent is recorded as '{agent}'"));
        }
        return found(Presence::Present, format!("contrast agent '{agent}' is recorded"));
    }
    match v.images.iter().find_map(|i| i.original_contrast_agent_recorded) {
        Some(true) => {
            return found(
                Presence::Present,
                "a contrast agent was recorded at the scanner (its name is removed by de-identification)".into(),
            );
        }
        Some(false) => return found(Presence::Absent, "no contrast agent was recorded at the scanner".into()),
        None => {}
    }
    if let Some(route) = v.text(|i| &i.contrast_route) {
        return found(Presence::Present, format!("contrast route '{route}' is recorded"));
    }
    if let Some(ingredient) = v.text(|i| &i.contrast_ingredient) {
        return found(Presence::Present, format!("contrast ingredient '{ingredient}' is recorded"));
    }
    if let Some(volume) = v.stats(|i| i.contrast_volume_ml) {
        return if volume.max > 0.0 {
            found(Presence::Present, format!("a contrast volume of {} ml is recorded", super::text::num(volume.max)))
        } else {
            found(Presence::Absent, "a contrast volume of 0 ml is recorded".into())
        };
    }
    if !v.has(|i| &i.contrast_agent) {
        return found(Presence::Absent, "no contrast agent is recorded in the images".into());
    }
    let hints: Vec<(bool, &str)> = v.descriptors().filter_map(|d| descriptor_hint(d).map(|h| (h, d))).collect();
    match hints.as_slice() {
        [(first, d), rest @ ..] if rest.iter().all(|(h, _)| h == first) => {
            let presence = if *first { Presence::Present } else { Presence::Absent };
            found(presence, format!("the contrast agent field is empty and the description '{d}' says so"))
        }
        [] => found(
            Presence::Unknown,
            "the contrast agent field is empty (de-identification may have emptied it) and the description does not tell"
                .into(),
        ),
        _ => found(Presence::Unknown, "the descriptions contradict each other about contrast".into()),
    }
}

/// What the headers say about the contrast phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PhaseEvidence {
    Known(ContrastPhase, String),
    Unknown(String),
}

fn phase_words(text: &str) -> Vec<ContrastPhase> {
    let mut out = Vec::new();
    for w in words(text) {
        let p = match w.as_str() {
            "ARTERIAL" | "ART" | "HAP" => Some(ContrastPhase::Arterial),
            "PORTAL" | "PV" | "PVP" | "VENOUS" | "PORTOVENOUS" => Some(ContrastPhase::PortalVenous),
            "DELAYED" | "DELAY" | "EQUILIBRIUM" | "EXCRETORY" => Some(ContrastPhase::Delayed),
            _ => None,
        };
        if let Some(p) = p.filter(|p| !out.contains(p)) {
            out.push(p);
        }
    }
    out
}

/// Seconds from Contrast/Bolus Start Time to Acquisition Time (earliest of each); negative when the
/// series was acquired before the injection. Over midnight when the injection was late in the day.
pub(crate) fn delay_s(v: &SeriesView) -> Option<f64> {
    let start = v.stats(|i| i.contrast_start_time_s)?.min;
    let acquired = v.stats(|i| i.acquisition_time_s)?.min;
    let mut d = acquired - start;
    if d < -12.0 * 3600.0 {
        d += 86_400.0;
    }
    Some(d)
}

fn phase_name(p: ContrastPhase) -> &'static str {
    match p {
        ContrastPhase::Arterial => "arterial",
        ContrastPhase::PortalVenous => "portal venous",
        ContrastPhase::Delayed => "delayed",
    }
}

pub(crate) fn phase_text(p: ContrastPhase) -> String {
    format!("{} phase", phase_name(p))
}

pub(crate) fn phase(v: &SeriesView) -> PhaseEvidence {
    let mut named: Vec<(ContrastPhase, &str)> = Vec::new();
    for d in v.descriptors() {
        for p in phase_words(d) {
            if !named.iter().any(|(q, _)| *q == p) {
                named.push((p, d));
            }
        }
    }
    match named.as_slice() {
        [(p, d)] => return PhaseEvidence::Known(*p, format!("the description '{d}'")),
        [] => {}
        more => {
            let names: Vec<&str> = more.iter().map(|(p, _)| phase_name(*p)).collect();
            return PhaseEvidence::Unknown(format!("the descriptions name several phases ({})", names.join(", ")));
        }
    }
    match delay_s(v) {
        Some(d) => {
            let secs = d.round();
            let p = if (15.0..=45.0).contains(&secs) {
                Some(ContrastPhase::Arterial)
            } else if (50.0..=100.0).contains(&secs) {
                Some(ContrastPhase::PortalVenous)
            } else if secs >= 180.0 {
                Some(ContrastPhase::Delayed)
            } else {
                None
            };
            let how = format!("acquisition {secs:.0} s after the injection started");
            match p {
                Some(p) => PhaseEvidence::Known(p, how),
                None => PhaseEvidence::Unknown(format!("{how} fits no phase")),
            }
        }
        None => PhaseEvidence::Unknown("neither the description nor the injection and acquisition times tell".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_hints() {
        for (text, want) in [
            ("T1 MPRAGE POST", Some(true)),
            ("AX T1+C", Some(true)),
            ("CAP PORTAL VENOUS 5mm", Some(true)),
            ("T1 PRE", Some(false)),
            ("CT ABD NON CONTRAST", Some(false)),
            ("CT W/O", Some(false)),
            ("T1 MPRAGE", None),
            ("PRE AND POST", None),
        ] {
            assert_eq!(descriptor_hint(text), want, "{text}");
        }
    }

    #[test]
    fn phase_word_sets() {
        assert_eq!(phase_words("CAP PV 5mm"), vec![ContrastPhase::PortalVenous]);
        assert_eq!(phase_words("LIVER LATE ARTERIAL"), vec![ContrastPhase::Arterial]);
        assert_eq!(phase_words("ABD DELAYED 3min"), vec![ContrastPhase::Delayed]);
        assert!(phase_words("AX 1.25mm STD").is_empty());
    }
}
