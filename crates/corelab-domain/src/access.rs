//! Roles and the rules for granting them. Who may do what is decided in the use-case layer with
//! these types; this module holds only the rules that need no data beyond the grants themselves.

use serde::{Deserialize, Serialize};

/// A role held in one trial (system administration is an account flag, not a trial role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the trial: charter, sites, grants, queries, locks.
    TrialManager,
    /// Staff of one site: uploads, enrolls, answers queries; sees only that site's subjects.
    SiteUser,
    /// Reviews image quality against the charter.
    QcReviewer,
    /// Blinded independent reader.
    Reader,
    /// Decides between two readers when they disagree.
    Adjudicator,
    /// Read-only oversight of the trial's records; no PHI exists to see.
    Monitor,
    /// Aggregate status only; arm-level results only when the grant is unblinded.
    Sponsor,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::TrialManager,
        Role::SiteUser,
        Role::QcReviewer,
        Role::Reader,
        Role::Adjudicator,
        Role::Monitor,
        Role::Sponsor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::TrialManager => "trial_manager",
            Role::SiteUser => "site_user",
            Role::QcReviewer => "qc_reviewer",
            Role::Reader => "reader",
            Role::Adjudicator => "adjudicator",
            Role::Monitor => "monitor",
            Role::Sponsor => "sponsor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Roles that are bound to one site.
    pub fn is_site_role(self) -> bool {
        self == Role::SiteUser
    }

    /// Roles that read images blinded: they may never be linked to a site of the same trial.
    pub fn is_blinded_reader(self) -> bool {
        matches!(self, Role::Reader | Role::Adjudicator)
    }

    /// Whether the `unblinded` flag means anything for this role.
    pub fn may_be_unblinded(self) -> bool {
        matches!(self, Role::TrialManager | Role::Sponsor | Role::Monitor)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role held by one user in one trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    /// The site, for site roles; `None` otherwise.
    pub site_id: Option<String>,
    /// Sees treatment arms (only for roles where [`Role::may_be_unblinded`]).
    pub unblinded: bool,
}

/// Checks a new grant against the user's live grants in the same trial. The message says what to
/// do instead.
pub fn check_new_grant(existing: &[Grant], new: &Grant) -> Result<(), String> {
    match (new.role.is_site_role(), &new.site_id) {
        (true, None) => return Err(format!("the {} role needs a site: give site_id", new.role)),
        (false, Some(_)) => {
            return Err(format!("the {} role is not bound to a site: leave site_id out", new.role));
        }
        _ => {}
    }
    if new.unblinded && !new.role.may_be_unblinded() {
        return Err(format!("the {} role cannot be unblinded", new.role));
    }
    if existing.iter().any(|g| g == new) {
        return Err("the user already holds this role".into());
    }
    let has_site = existing.iter().any(|g| g.role.is_site_role());
    let has_reader = existing.iter().any(|g| g.role.is_blinded_reader());
    if new.role.is_blinded_reader() && has_site {
        return Err(format!(
            "a {} must be independent of the trial's sites, and this user holds a site role in this trial; \
             choose another reader or revoke the site role first",
            new.role
        ));
    }
    if new.role.is_site_role() && has_reader {
        return Err("this user reads images in this trial (reader or adjudicator) and cannot also be site staff; \
             revoke the reading role first"
            .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(role: Role, site: Option<&str>) -> Grant {
        Grant { role, site_id: site.map(str::to_string), unblinded: false }
    }

    #[test]
    fn grant_rules() {
        let cases: Vec<(Vec<Grant>, Grant, Option<&str>)> = vec![
            (vec![], g(Role::SiteUser, Some("101")), None),
            (vec![], g(Role::SiteUser, None), Some("needs a site")),
            (vec![], g(Role::Reader, Some("101")), Some("not bound to a site")),
            (vec![g(Role::SiteUser, Some("101"))], g(Role::Reader, None), Some("independent of the trial's sites")),
            (vec![g(Role::SiteUser, Some("101"))], g(Role::Adjudicator, None), Some("independent")),
            (vec![g(Role::Reader, None)], g(Role::SiteUser, Some("102")), Some("cannot also be site staff")),
            (vec![g(Role::Adjudicator, None)], g(Role::SiteUser, Some("102")), Some("cannot also be site staff")),
            (vec![g(Role::Reader, None)], g(Role::Adjudicator, None), None),
            (vec![g(Role::SiteUser, Some("101"))], g(Role::SiteUser, Some("102")), None),
            (vec![g(Role::SiteUser, Some("101"))], g(Role::SiteUser, Some("101")), Some("already holds")),
            (vec![g(Role::QcReviewer, None)], g(Role::Reader, None), None),
            (vec![], Grant { role: Role::Reader, site_id: None, unblinded: true }, Some("cannot be unblinded")),
            (vec![], Grant { role: Role::Sponsor, site_id: None, unblinded: true }, None),
        ];
        for (existing, new, expect) in cases {
            let got = check_new_grant(&existing, &new);
            match expect {
                None => assert!(got.is_ok(), "{new:?} after {existing:?}: {got:?}"),
                Some(frag) => {
                    let e = got.expect_err("should be refused");
                    assert!(e.contains(frag), "{e}");
                }
            }
        }
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
