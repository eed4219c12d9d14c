//! The MR sequence type of a series, from what its headers say.
//!
//! 1. Words in the descriptors (series description, protocol name, clinical trial series
//!    description), most specific first: FLAIR before T2, T2* before T2, maps before T1/T2.
//! 2. Otherwise the acquisition physics: diffusion b-value above 0 -> DWI; inversion recovery with
//!    TI >= 1500 ms -> FLAIR; gradient echo steady state with TR <= 6 ms -> CINE_SSFP; gradient echo
//!    inversion recovery with TI 500-1300 ms -> T1 (MPRAGE-like); spin echo TR <= 1000 ms and
//!    TE <= 30 ms -> T1, TR >= 2000 ms and TE >= 70 ms -> T2, TR >= 2000 ms and TE <= 40 ms -> PD;
//!    spoiled gradient echo TE <= 10 ms and TR <= 100 ms -> T1; other gradient echo with TE >= 15 ms
//!    -> T2_STAR.
//!
//! Physics alone never decides the specialised types (SWI, LGE, T1/T2 maps, perfusion, MRA):
//! for those only the descriptors can confirm or contradict.

use super::text::num;
use super::view::{SeriesView, words};
use crate::charter::MrSequence;

/// Whether physics alone can tell this type.
pub(crate) fn physics_decides(s: MrSequence) -> bool {
    matches!(
        s,
        MrSequence::T1
            | MrSequence::T2
            | MrSequence::Pd
            | MrSequence::Flair
            | MrSequence::Dwi
            | MrSequence::CineSsfp
            | MrSequence::T2Star
    )
}

fn from_words(text: &str) -> Option<MrSequence> {
    let upper = text.to_ascii_uppercase();
    let ws = words(text);
    let has = |w: &str| ws.iter().any(|x| x == w);
    let any = |list: &[&str]| list.iter().any(|w| has(w));
    let contains = |list: &[&str]| list.iter().any(|p| upper.contains(p));
    if contains(&["FLAIR", "DARK FLUID", "DARKFLUID"]) || has("TIRM") {
        return Some(MrSequence::Flair);
    }
    if contains(&["MOLLI", "T1MAP", "T1 MAP", "T1_MAP"]) {
        return Some(MrSequence::T1Map);
    }
    if contains(&["T2MAP", "T2 MAP", "T2_MAP"]) {
        return Some(MrSequence::T2Map);
    }
    if contains(&["DIFF"]) || any(&["DWI", "ADC", "TRACE", "DTI"]) {
        return Some(MrSequence::Dwi);
    }
    if any(&["SWI", "SWAN", "SWIP"]) {
        return Some(MrSequence::Swi);
    }
    if contains(&["T2*", "T2STAR", "T2_STAR", "T2 STAR"]) || has("HEMO") {
        return Some(MrSequence::T2Star);
    }
    if any(&["LGE", "PSIR"]) || contains(&["DELAYED ENH", "LATE GAD"]) {
        return Some(MrSequence::Lge);
    }
    if any(&["CINE", "TRUFI", "TRUEFISP", "FIESTA", "BTFE", "SSFP"]) {
        return Some(MrSequence::CineSsfp);
    }
    if contains(&["PERF"]) || any(&["DSC", "DCE", "ASL"]) {
        return Some(MrSequence::Perfusion);
    }
    if any(&["TOF", "MRA", "ANGIO"]) {
        return Some(MrSequence::Mra);
    }
    if any(&["PD", "PDW", "PD/T2"]) {
        return Some(MrSequence::Pd);
    }
    if any(&["T2", "T2W", "T2WI"]) {
        return Some(MrSequence::T2);
    }
    if any(&["T1", "T1W", "T1WI", "MPRAGE", "MP-RAGE", "SPGR", "FSPGR", "BRAVO", "VIBE", "T1+C"]) {
        return Some(MrSequence::T1);
    }
    None
}

fn from_physics(v: &SeriesView) -> Option<(MrSequence, String)> {
    if let Some(b) = v.stats(|i| i.diffusion_b_value_s_per_mm2).filter(|b| b.max > 0.0) {
        return Some((MrSequence::Dwi, format!("diffusion b-values up to {} s/mm²", super::text::whole(b.max))));
    }
    let ss: &[String] = v.images.iter().map(|i| i.scanning_sequence.as_slice()).find(|s| !s.is_empty())?;
    let sv: &[String] = v.images.iter().map(|i| i.sequence_variant.as_slice()).find(|s| !s.is_empty()).unwrap_or(&[]);
    let has = |list: &[String], code: &str| list.iter().any(|c| c == code);
    let tr = v.stats(|i| i.repetition_time_ms).map(|s| s.median);
    let te = v.stats(|i| i.echo_time_ms).map(|s| s.median);
    let ti = v.stats(|i| i.inversion_time_ms).map(|s| s.median);
    let (se, gr, ir) = (has(ss, "SE"), has(ss, "GR"), has(ss, "IR"));
    let ms = |name: &str, value: Option<f64>| value.map(|x| format!("{name} {} ms", num(x)));
    let evidence = |kind: &str| {
        let mut parts = vec![kind.to_string()];
        parts.extend([ms("TR", tr), ms("TE", te), ms("TI", ti)].into_iter().flatten());
        parts.join(", ")
    };
    if ir && ti.is_some_and(|t| t >= 1500.0) {
        return Some((MrSequence::Flair, evidence("inversion recovery")));
    }
    if gr && !ir && (has(sv, "SS") || has(sv, "TRSS")) && tr.is_some_and(|t| t <= 6.0) {
        return Some((MrSequence::CineSsfp, evidence("steady-state gradient echo")));
    }
    if gr && ir && ti.is_some_and(|t| (500.0..=1300.0).contains(&t)) {
        return Some((MrSequence::T1, evidence("inversion-prepared gradient echo")));
    }
    if ir {
        return None;
    }
    if se {
        return match (tr?, te?) {
            (tr, te) if tr <= 1000.0 && te <= 30.0 => Some((MrSequence::T1, evidence("spin echo"))),
            (tr, te) if tr >= 2000.0 && te >= 70.0 => Some((MrSequence::T2, evidence("spin echo"))),
            (tr, te) if tr >= 2000.0 && te <= 40.0 => Some((MrSequence::Pd, evidence("spin echo"))),
            _ => None,
        };
    }
    if gr {
        let (tr, te) = (tr?, te?);
        if has(sv, "SP") && te <= 10.0 && tr <= 100.0 {
            return Some((MrSequence::T1, evidence("spoiled gradient echo")));
        }
        if !has(sv, "SP") && te >= 15.0 {
            return Some((MrSequence::T2Star, evidence("gradient echo")));
        }
    }
    None
}

/// The sequence type and the evidence, in words ("the description 'AX FLAIR'").
pub(crate) fn classify(v: &SeriesView) -> Option<(MrSequence, String)> {
    for d in v.descriptors() {
        if let Some(s) = from_words(d) {
            return Some((s, format!("the description '{d}'")));
        }
    }
    from_physics(v)
}

/// Whether the type came from the descriptors (which may decide every type) or physics.
pub(crate) fn from_descriptors(v: &SeriesView) -> bool {
    v.descriptors().any(|d| from_words(d).is_some())
}

/// "T1", "T2*", "FLAIR", ... as radiographers write them.
pub(crate) fn name(s: MrSequence) -> &'static str {
    match s {
        MrSequence::T1 => "T1-weighted",
        MrSequence::T2 => "T2-weighted",
        MrSequence::Pd => "proton density",
        MrSequence::Flair => "FLAIR",
        MrSequence::Dwi => "diffusion (DWI)",
        MrSequence::Swi => "SWI",
        MrSequence::T2Star => "T2*",
        MrSequence::CineSsfp => "cine SSFP",
        MrSequence::Lge => "late gadolinium enhancement",
        MrSequence::T1Map => "T1 map",
        MrSequence::T2Map => "T2 map",
        MrSequence::Perfusion => "perfusion",
        MrSequence::Mra => "MR angiography",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_most_specific_first() {
        for (text, want) in [
            ("AX T2 FLAIR", Some(MrSequence::Flair)),
            ("SAG 3D T1 MPRAGE", Some(MrSequence::T1)),
            ("AX T2 TSE", Some(MrSequence::T2)),
            ("AX T2* GRE", Some(MrSequence::T2Star)),
            ("MOLLI T1 MAP", Some(MrSequence::T1Map)),
            ("ep2d_diff_b1000", Some(MrSequence::Dwi)),
            ("SAX CINE", Some(MrSequence::CineSsfp)),
            ("PSIR SAX", Some(MrSequence::Lge)),
            ("AX PD FS", Some(MrSequence::Pd)),
            ("LOCALIZER", None),
        ] {
            assert_eq!(from_words(text), want, "{text}");
        }
    }
}
