//! Who may read (or adjudicate) a case: the charter's reader qualifications checked against a
//! reader's profile, independence from the trial's sites, and workload. Pure: the caller brings
//! today's date and the candidates.

use chrono::NaiveDate;
use corelab_domain::charter::{Criteria, ReaderQualifications, TherapeuticArea};
use uuid::Uuid;

/// A reader's qualifications as recorded by the trial manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub therapeutic_areas: Vec<TherapeuticArea>,
    pub criteria: Vec<Criteria>,
    pub training_valid_until: Option<NaiveDate>,
}

/// Someone holding the reader (or adjudicator) role in the trial.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub user_id: Uuid,
    pub username: String,
    pub disabled: bool,
    /// Holds a site role in the trial (impossible by the grant rules; checked anyway).
    pub site_role: bool,
    pub profile: Option<Profile>,
    /// Tasks (or adjudications) assigned and not yet done, over every trial.
    pub open: i64,
}

/// Why a profile does not meet the charter, one sentence per reason; empty when it does.
pub fn profile_gaps(req: &ReaderQualifications, profile: Option<&Profile>, today: NaiveDate) -> Vec<String> {
    let Some(p) = profile else {
        return vec!["no reader profile".into()];
    };
    let mut out = Vec::new();
    if let Some(area) = req.therapeutic_area
        && !p.therapeutic_areas.contains(&area)
    {
        out.push(format!("not qualified in {area}"));
    }
    for c in &req.criteria {
        if !p.criteria.contains(c) {
            out.push(format!("not qualified for {c}"));
        }
    }
    if req.training_current {
        match p.training_valid_until {
            None => out.push("no current training recorded".into()),
            Some(until) if until < today => out.push(format!("training expired on {until}")),
            Some(_) => {}
        }
    }
    out
}

/// Why a candidate may not take a case; empty when they may.
pub fn candidate_gaps(req: &ReaderQualifications, c: &Candidate, today: NaiveDate, exclude: &[Uuid]) -> Vec<String> {
    let mut out = Vec::new();
    if exclude.contains(&c.user_id) {
        out.push("already reads this case".into());
    }
    if c.disabled {
        out.push("account disabled".into());
    }
    if c.site_role {
        out.push("holds a site role in this trial".into());
    }
    out.extend(profile_gaps(req, c.profile.as_ref(), today));
    out
}

/// The qualified candidates, fewest open tasks first (ties: the longest-standing account first,
/// by user id), and for the others why they were passed over ("rita: training expired on ...").
pub fn rank(
    req: &ReaderQualifications,
    candidates: &[Candidate],
    today: NaiveDate,
    exclude: &[Uuid],
) -> (Vec<Uuid>, Vec<String>) {
    let mut ok: Vec<&Candidate> = Vec::new();
    let mut passed_over = Vec::new();
    for c in candidates {
        let gaps = candidate_gaps(req, c, today, exclude);
        if gaps.is_empty() {
            ok.push(c);
        } else if !exclude.contains(&c.user_id) {
            passed_over.push(format!("{}: {}", c.username, gaps.join(", ")));
        }
    }
    ok.sort_by_key(|c| (c.open, c.user_id));
    (ok.into_iter().map(|c| c.user_id).collect(), passed_over)
}

/// The note shown to the trial manager when nobody qualifies.
pub fn none_available(role: &str, passed_over: &[String]) -> String {
    if passed_over.is_empty() {
        format!("no qualified {role} available: nobody holds the {role} role in this trial")
    } else {
        format!("no qualified {role} available ({})", passed_over.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ReaderQualifications {
        ReaderQualifications {
            therapeutic_area: Some(TherapeuticArea::Oncology),
            criteria: vec![Criteria::Recist11],
            training_current: true,
        }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn cand(n: u128, name: &str, open: i64, until: Option<&str>) -> Candidate {
        Candidate {
            user_id: Uuid::from_u128(n),
            username: name.into(),
            disabled: false,
            site_role: false,
            profile: Some(Profile {
                therapeutic_areas: vec![TherapeuticArea::Oncology],
                criteria: vec![Criteria::Recist11],
                training_valid_until: until.map(day),
            }),
            open,
        }
    }

    #[test]
    fn the_least_busy_qualified_readers_come_first() {
        let today = day("2026-11-27");
        let cands = vec![
            cand(1, "busy", 5, Some("2027-01-01")),
            cand(2, "idle", 0, Some("2027-01-01")),
            cand(3, "tied", 5, Some("2027-01-01")),
        ];
        let (ok, _) = rank(&req(), &cands, today, &[]);
        assert_eq!(ok, vec![Uuid::from_u128(2), Uuid::from_u128(1), Uuid::from_u128(3)]);
        let (ok, _) = rank(&req(), &cands, today, &[Uuid::from_u128(2)]);
        assert_eq!(ok, vec![Uuid::from_u128(1), Uuid::from_u128(3)]);
    }

    #[test]
    fn unqualified_expired_disabled_and_site_linked_readers_are_never_chosen() {
        let today = day("2026-11-27");
        let mut expired = cand(1, "expired", 0, Some("2026-11-26"));
        let mut wrong_area = cand(2, "cardio", 0, Some("2027-01-01"));
        wrong_area.profile.as_mut().unwrap().therapeutic_areas = vec![TherapeuticArea::Cardiology];
        let mut wrong_criteria = cand(3, "ms", 0, Some("2027-01-01"));
        wrong_criteria.profile.as_mut().unwrap().criteria = vec![Criteria::Irecist];
        let mut no_profile = cand(4, "new", 0, None);
        no_profile.profile = None;
        let mut site = cand(5, "site", 0, Some("2027-01-01"));
        site.site_role = true;
        let mut disabled = cand(6, "gone", 0, Some("2027-01-01"));
        disabled.disabled = true;
        let untrained = cand(7, "untrained", 0, None);
        let (ok, why) = rank(
            &req(),
            &[expired.clone(), wrong_area, wrong_criteria, no_profile, site, disabled, untrained],
            today,
            &[],
        );
        assert!(ok.is_empty());
        let why = why.join("\n");
        for s in [
            "expired: training expired on 2026-11-26",
            "cardio: not qualified in oncology",
            "ms: not qualified for RECIST1.1",
            "new: no reader profile",
            "site: holds a site role in this trial",
            "gone: account disabled",
            "untrained: no current training recorded",
        ] {
            assert!(why.contains(s), "{s} in {why}");
        }
        // Training valid through today counts; a charter without the training rule ignores it.
        expired.profile.as_mut().unwrap().training_valid_until = Some(today);
        assert_eq!(rank(&req(), &[expired.clone()], today, &[]).0.len(), 1);
        expired.profile.as_mut().unwrap().training_valid_until = Some(day("2020-01-01"));
        let relaxed = ReaderQualifications { training_current: false, ..req() };
        assert_eq!(rank(&relaxed, &[expired], today, &[]).0.len(), 1);
        assert!(none_available("reader", &[]).starts_with("no qualified reader available"));
    }
}
