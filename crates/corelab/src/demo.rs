//! `corelab serve --demo`: an example trial to look around in, made on first start.
//!
//! The oncology example charter (embedded, so the binary works from any directory), its sites 101
//! and 102 qualified, one demo account per role sharing [`DEMO_PASSWORD`], six subjects, and CT
//! images that corelab synthesises itself (`corelab_dicom::synth`) with an obviously fake patient
//! identity. Everything goes through the same use cases a person would use, as that person:
//! staff upload and enrol, the images pass through real ingest (de-identification, matching,
//! automated QC), QC reviewers sign their decisions, readers sign their reads. The visits end up
//! spread over the states the pages show (see docs/demo.md):
//!
//! | subject | visits |
//! |---|---|
//! | 101-001 | BL and W8 QC passed, read by both readers who disagree at W8: adjudication pending; W16 not yet due |
//! | 101-002 | BL QC passed, read by reader 1, open for reader 2; W8 window open, nothing received |
//! | 101-003 | BL received, awaiting QC1 (in the QC queue) |
//! | 102-001 | BL rejected by QC: data query open at site 102 |
//! | 102-002 | BL sent with 7 mm slices: failed automated QC, automatic data query open |
//! | 102-003 | BL QC passed, open for both readers; W8 overdue |
//!
//! Starting again with `--demo` on the same database changes nothing: the set-up is skipped when
//! the demo trial and every demo account exist, and each step checks what is there before acting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::NaiveDate;
use corelab_app::grants::NewGrant;
use corelab_app::ingest::{IngestOutcome, IngestTarget, Source};
use corelab_app::qc::Outcome;
use corelab_app::reads::ProfileInput;
use corelab_app::signatures::SigningCredentials;
use corelab_app::subjects::Enrollment;
use corelab_app::users::NewUser;
use corelab_app::{Actor, App, AppError};
use corelab_dicom::synth::{CtSeries, FakePatient, Lesion};
use corelab_domain::access::Role;
use serde_json::{Value, json};
use uuid::Uuid;

/// The one password of every demo account. Printed at start; it exists only in databases that
/// were started with `--demo`.
pub const DEMO_PASSWORD: &str = "Demo-Only-Password-1";

/// The charter the demo trial is made from.
pub const CHARTER: &str = include_str!("../../../charters/oncology-ct-recist.toml");

/// The demo trial's protocol ID (the charter's).
pub const PROTOCOL_ID: &str = "ACME-101";

/// In demo mode a study is judged complete after this many seconds without new images (or the
/// configured period, if shorter), so the set-up is quick and uploads show QC results at once.
pub const QUIET_PERIOD_SECONDS: u32 = 2;

/// Every value of the synthetic patient identities starts with one of these, so a scan of the
/// stored bytes can prove that de-identification removed them all.
pub const FAKE_PHI_MARKERS: &[&str] = &["ZZDEMO", "ZZMRN", "ZZACC"];

/// A demo account: who it is and what it shows.
#[derive(Debug, Clone, Copy)]
pub struct DemoAccount {
    pub username: &'static str,
    pub display_name: &'static str,
    pub role: Role,
    pub site: Option<&'static str>,
    /// What to look at when logged in as this account.
    pub shows: &'static str,
}

/// The demo accounts, in the order they are printed. Monitor and sponsor only look; they are
/// created last, so their presence also says the set-up finished.
pub const ACCOUNTS: &[DemoAccount] = &[
    DemoAccount {
        username: "demo-tm",
        display_name: "Tessa Manager (demo)",
        role: Role::TrialManager,
        site: None,
        shows: "dashboard, visit grid, reader profiles, queries, audit trail",
    },
    DemoAccount {
        username: "demo-site101",
        display_name: "Sam Saint-Louis (demo)",
        role: Role::SiteUser,
        site: Some("101"),
        shows: "site 101 only: its subjects, upload, qualification",
    },
    DemoAccount {
        username: "demo-site102",
        display_name: "Bea Berlin (demo)",
        role: Role::SiteUser,
        site: Some("102"),
        shows: "site 102 only: two open data queries to answer",
    },
    DemoAccount {
        username: "demo-qc",
        display_name: "Quinn Checker (demo)",
        role: Role::QcReviewer,
        site: None,
        shows: "QC queue (a visit awaiting QC1), QC review, queries",
    },
    DemoAccount {
        username: "demo-qc2",
        display_name: "Quentin Second (demo)",
        role: Role::QcReviewer,
        site: None,
        shows: "second QC reviewer (QC2 must be someone else than QC1)",
    },
    DemoAccount {
        username: "demo-reader1",
        display_name: "Rita Reader (demo)",
        role: Role::Reader,
        site: None,
        shows: "blinded read tasks: one open baseline, reads already signed",
    },
    DemoAccount {
        username: "demo-reader2",
        display_name: "Rob Reader (demo)",
        role: Role::Reader,
        site: None,
        shows: "blinded read tasks: two open baselines",
    },
    DemoAccount {
        username: "demo-adjudicator",
        display_name: "Ada Judge (demo)",
        role: Role::Adjudicator,
        site: None,
        shows: "an adjudication waiting: the readers disagree on progression",
    },
    DemoAccount {
        username: "demo-monitor",
        display_name: "Mo Nitor (demo)",
        role: Role::Monitor,
        site: None,
        shows: "read-only oversight: every site, audit trail",
    },
    DemoAccount {
        username: "demo-sponsor",
        display_name: "Spencer Sponsor (demo)",
        role: Role::Sponsor,
        site: None,
        shows: "aggregate status and reports only",
    },
];

/// Whether this start created the demo or found it.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub trial_id: Uuid,
    pub created: bool,
    pub elapsed: Duration,
}

/// The synthetic identity of a demo subject's images (all made up; see [`FAKE_PHI_MARKERS`]).
pub fn fake_patient(subject_code: &str) -> FakePatient {
    let digits: String = subject_code.chars().filter(char::is_ascii_digit).collect();
    FakePatient {
        name: format!("ZZDEMO^FAKE PATIENT {digits}"),
        patient_id: format!("ZZMRN{digits}"),
        birth_date: "19580412".into(),
        sex: "F".into(),
        accession_number: format!("ZZACC{digits}"),
        referring_physician: "ZZDEMO^REFERRING DOCTOR".into(),
        institution_name: "ZZDEMO Synthetic Hospital".into(),
        institution_address: "1 Nowhere Street, ZZDEMO Town".into(),
    }
}

/// What QC should make of a visit's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QcPlan {
    /// QC1 and QC2 accept.
    Pass,
    /// QC1 rejects: a data query goes to the site.
    Reject,
    /// Left in the QC queue.
    Await,
    /// The automated check fails (the images break the charter).
    AutoFail,
}

struct VisitPlan {
    visit: &'static str,
    /// Scan day relative to the subject's anchor date.
    day: i64,
    slice_thickness_mm: f64,
    /// (radius mm) of the liver lesion, the lung nodule and the bone lesion.
    radii: [f64; 3],
    qc: QcPlan,
}

struct SubjectPlan {
    code: &'static str,
    site: &'static str,
    arm: &'static str,
    /// Anchor (randomisation) date, days before today.
    anchor_days_ago: i64,
    visits: &'static [VisitPlan],
}

const fn visit(visit: &'static str, day: i64, radii: [f64; 3], qc: QcPlan) -> VisitPlan {
    VisitPlan { visit, day, slice_thickness_mm: 5.0, radii, qc }
}

const SUBJECTS: &[SubjectPlan] = &[
    SubjectPlan {
        code: "101-001",
        site: "101",
        arm: "A",
        anchor_days_ago: 70,
        visits: &[visit("BL", -7, [15.0, 10.5, 5.0], QcPlan::Pass), visit("W8", 56, [18.5, 11.5, 5.0], QcPlan::Pass)],
    },
    SubjectPlan {
        code: "101-002",
        site: "101",
        arm: "B",
        anchor_days_ago: 60,
        visits: &[visit("BL", -5, [12.0, 8.0, 4.0], QcPlan::Pass)],
    },
    SubjectPlan {
        code: "101-003",
        site: "101",
        arm: "A",
        anchor_days_ago: 10,
        visits: &[visit("BL", -3, [11.0, 7.5, 4.0], QcPlan::Await)],
    },
    SubjectPlan {
        code: "102-001",
        site: "102",
        arm: "B",
        anchor_days_ago: 30,
        visits: &[visit("BL", -6, [13.0, 9.0, 5.0], QcPlan::Reject)],
    },
    SubjectPlan {
        code: "102-002",
        site: "102",
        arm: "A",
        anchor_days_ago: 20,
        visits: &[VisitPlan {
            visit: "BL",
            day: -4,
            slice_thickness_mm: 7.0,
            radii: [14.0, 9.5, 4.5],
            qc: QcPlan::AutoFail,
        }],
    },
    SubjectPlan {
        code: "102-003",
        site: "102",
        arm: "B",
        anchor_days_ago: 84,
        visits: &[visit("BL", -10, [16.0, 10.0, 5.0], QcPlan::Pass)],
    },
];

/// The reason QC1 gives for the rejected visit (what the site reads in its data query).
const REJECT_REASON: &str = "Breathing motion blurs the liver dome on slices 3 to 6; please repeat the portal venous series with a breath-hold.";

/// Creates the demo trial, accounts, subjects and images unless they exist. Needs no running
/// server: background jobs that the set-up waits for (automated QC) are run from here.
pub async fn ensure(app: &App) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let mut tx = app.db().read().await?;
    let trial = tx.trial_by_protocol(PROTOCOL_ID).await?;
    let mut present = 0;
    for a in ACCOUNTS {
        if tx.user_by_username(a.username).await?.is_some() {
            present += 1;
        }
    }
    drop(tx);
    match (&trial, present) {
        (Some(t), n) if n == ACCOUNTS.len() => {
            return Ok(DemoReport { trial_id: t.id, created: false, elapsed: started.elapsed() });
        }
        (Some(_), 0) => bail!(
            "this database already has a trial {PROTOCOL_ID} that --demo did not create; \
             run the demo on its own data directory (--data-dir DIR, or CORELAB_DATA_DIR)"
        ),
        _ => {}
    }
    let trial_id = Seeder::new(app).run().await.context("setting up the demo trial")?;
    Ok(DemoReport { trial_id, created: true, elapsed: started.elapsed() })
}

/// The operator identity the set-up acts as where a system administrator is needed (the trial,
/// the accounts, the trial manager's grant). Everything else is done by the demo accounts.
fn setup_actor() -> Actor {
    Actor {
        user_id: None,
        username: "corelab-demo".into(),
        display_name: "corelab demo set-up (serve --demo)".into(),
        is_system_admin: true,
        role: "operator".into(),
        must_change_password: false,
        session: None,
        token: None,
    }
}

fn creds(username: &str) -> SigningCredentials {
    SigningCredentials { username: Some(username.to_string()), password: DEMO_PASSWORD.to_string() }
}

struct Seeder<'a> {
    app: &'a App,
    setup: Actor,
    today: NaiveDate,
    /// Logged-in demo accounts, by username.
    people: HashMap<&'static str, Actor>,
}

impl<'a> Seeder<'a> {
    fn new(app: &'a App) -> Self {
        Seeder { app, setup: setup_actor(), today: app.clock().now().date_naive(), people: HashMap::new() }
    }

    fn who(&self, username: &str) -> anyhow::Result<&Actor> {
        self.people.get(username).ok_or_else(|| anyhow!("demo account {username} is not logged in"))
    }

    async fn run(mut self) -> anyhow::Result<Uuid> {
        let (workers, observers) = ACCOUNTS.split_at(ACCOUNTS.len() - 2);
        let ids = self.accounts(workers).await?;
        let trial = self.trial().await?;
        self.grants(trial, workers, &ids).await?;
        for a in workers {
            let login = self.app.login(a.username, DEMO_PASSWORD).await.with_context(|| {
                format!("logging in as {}: was its password changed? Start on a fresh data directory", a.username)
            })?;
            self.people.insert(a.username, login.actor);
        }
        self.reader_profiles(trial, &ids).await?;
        self.qualify(trial).await?;
        let subjects = self.enroll(trial).await?;
        self.send_images(trial, &subjects).await?;
        self.wait_for_automated_qc(&subjects).await?;
        self.review(&subjects).await?;
        self.read(trial, &subjects).await?;
        // Observers last: their accounts mark the set-up as complete.
        let ids = self.accounts(observers).await?;
        self.grants(trial, observers, &ids).await?;
        for actor in std::mem::take(&mut self.people).into_values() {
            self.app.logout(&actor).await?;
        }
        Ok(trial)
    }

    async fn accounts(&self, accounts: &[DemoAccount]) -> anyhow::Result<HashMap<&'static str, Uuid>> {
        let mut ids = HashMap::new();
        for a in accounts {
            let existing = self.app.db().read().await?.user_by_username(a.username).await?;
            let id = match existing {
                Some(u) => u.id,
                None => {
                    let new = NewUser {
                        username: a.username.into(),
                        display_name: a.display_name.into(),
                        email: None,
                        is_system_admin: false,
                        password: Some(DEMO_PASSWORD.into()),
                    };
                    self.app
                        .create_user(&self.setup, new)
                        .await
                        .with_context(|| format!("creating the demo account {}", a.username))?
                        .user
                        .id
                }
            };
            ids.insert(a.username, id);
        }
        Ok(ids)
    }

    async fn trial(&self) -> anyhow::Result<Uuid> {
        if let Some(t) = self.app.db().read().await?.trial_by_protocol(PROTOCOL_ID).await? {
            return Ok(t.id);
        }
        Ok(self.app.create_trial(&self.setup, CHARTER).await?.id)
    }

    async fn grants(
        &self,
        trial: Uuid,
        accounts: &[DemoAccount],
        ids: &HashMap<&'static str, Uuid>,
    ) -> anyhow::Result<()> {
        let live = self.app.list_grants(&self.setup, trial).await?;
        for a in accounts {
            let user_id = ids[a.username];
            if live.iter().any(|g| g.user_id == user_id && g.role == a.role.as_str()) {
                continue;
            }
            let grant = NewGrant { user_id, role: a.role, site_id: a.site.map(str::to_string), unblinded: false };
            self.app
                .grant_role(&self.setup, trial, grant)
                .await
                .with_context(|| format!("granting {} to {}", a.role.as_str(), a.username))?;
        }
        Ok(())
    }

    /// The trial manager records the readers' and the adjudicator's qualifications.
    async fn reader_profiles(&self, trial: Uuid, ids: &HashMap<&'static str, Uuid>) -> anyhow::Result<()> {
        let tm = self.who("demo-tm")?;
        let profiles = self.app.reader_profiles(tm, trial).await?;
        for username in ["demo-reader1", "demo-reader2", "demo-adjudicator"] {
            let user_id = ids[username];
            if profiles.iter().any(|p| p.user_id == user_id && p.qualified) {
                continue;
            }
            let input = ProfileInput {
                user_id,
                therapeutic_areas: vec!["oncology".into()],
                criteria: vec!["RECIST1.1".into()],
                training_valid_until: Some(self.today + chrono::Duration::days(730)),
            };
            self.app.set_reader_profile(tm, trial, input).await?;
        }
        Ok(())
    }

    /// Sites 101 and 102 upload a phantom slice and QC approves them (site 201 stays pending).
    async fn qualify(&self, trial: Uuid) -> anyhow::Result<()> {
        for (site, staff) in [("101", "demo-site101"), ("102", "demo-site102")] {
            let staff = self.who(staff)?;
            let q = self.app.qualification(staff, trial, site).await?;
            if q.status == "qualified" {
                continue;
            }
            if q.scans.is_empty() {
                let mut phantom = CtSeries::portal_venous(
                    FakePatient { name: "ZZDEMO^PHANTOM".into(), ..fake_patient(&format!("QUAL{site}")) },
                    &self.date(-30).format("%Y%m%d").to_string(),
                    &new_uid(),
                    &new_uid(),
                );
                phantom.slices = 1;
                phantom.series_description = "ACR PHANTOM PORTAL VENOUS".into();
                let bytes = phantom.instance(0)?;
                self.app.upload_qualification_scan(staff, trial, site, std::io::Cursor::new(bytes)).await?;
            }
            self.app.decide_qualification(self.who("demo-qc")?, trial, site, true, "", creds("demo-qc")).await?;
        }
        Ok(())
    }

    fn date(&self, days_from_today: i64) -> NaiveDate {
        self.today + chrono::Duration::days(days_from_today)
    }

    /// Site staff enrol the subjects; returns their ids by subject code.
    async fn enroll(&self, trial: Uuid) -> anyhow::Result<HashMap<&'static str, Uuid>> {
        let mut out = HashMap::new();
        for s in SUBJECTS {
            let existing = self.app.db().read().await?.subject_by_code(trial, s.code).await?;
            let id = match existing {
                Some(row) => row.id,
                None => {
                    let e = Enrollment {
                        site_id: s.site.into(),
                        subject_id: s.code.into(),
                        anchor_date: self.date(-s.anchor_days_ago),
                        arm: Some(s.arm.into()),
                    };
                    self.app.enroll_subject(self.who(staff_of(s.site))?, trial, e).await?.id
                }
            };
            out.insert(s.code, id);
        }
        Ok(out)
    }

    /// Site staff send each planned visit's synthetic series through ingest. A visit that has
    /// images already is left alone (sending again would restart its QC).
    async fn send_images(&self, trial: Uuid, subjects: &HashMap<&'static str, Uuid>) -> anyhow::Result<()> {
        let tm = self.who("demo-tm")?;
        for s in SUBJECTS {
            let staff = self.who(staff_of(s.site))?;
            let target = IngestTarget {
                trial_id: trial,
                site_id: s.site.into(),
                source: Source::Upload,
                sender: staff.username.clone(),
                sender_role: "site_user".into(),
                sender_id: staff.user_id,
            };
            let setup = self.app.ingest_setup(&target).await.map_err(|e| anyhow!("{e}"))?;
            for v in s.visits {
                let detail = self.app.visit_detail(tm, subjects[s.code], v.visit).await?;
                if !detail.studies.is_empty() {
                    continue;
                }
                let series = self.series(s, v);
                for i in 0..series.slices {
                    let bytes = series.instance(i)?;
                    let outcome = self
                        .app
                        .ingest(&setup, target.clone(), std::io::Cursor::new(bytes))
                        .await
                        .map_err(|e| anyhow!("ingest of {} {}: {e}", s.code, v.visit))?;
                    if let IngestOutcome::Inbox { reason, .. } = outcome {
                        bail!("the demo images of {} {} were not matched: {reason}", s.code, v.visit);
                    }
                }
            }
        }
        Ok(())
    }

    fn series(&self, s: &SubjectPlan, v: &VisitPlan) -> CtSeries {
        let scan = self.date(v.day - s.anchor_days_ago);
        let mut series =
            CtSeries::portal_venous(fake_patient(s.code), &scan.format("%Y%m%d").to_string(), &new_uid(), &new_uid());
        series.clinical_trial_subject_id = Some(s.code.into());
        series.clinical_trial_time_point_id = Some(v.visit.into());
        series.slice_thickness_mm = v.slice_thickness_mm;
        series.slices = 10;
        series.seed =
            s.code.bytes().chain(v.visit.bytes()).fold(17, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        // Lesion centres sit on slice centres (z = +-2.5 mm for 5 mm slices), so the central slice
        // shows each lesion's full diameter.
        let half = v.slice_thickness_mm / 2.0;
        series.lesions = vec![
            Lesion { center_mm: [-62.0, -12.0, half], radius_mm: v.radii[0], hu: 45 },
            Lesion { center_mm: [95.0, 50.0, -half], radius_mm: v.radii[1], hu: 35 },
            Lesion { center_mm: [6.0, 76.0, half], radius_mm: v.radii[2], hu: 950 },
        ];
        series
    }

    /// Runs due background jobs (the quiet-period QC check) until every planned visit has been
    /// checked.
    async fn wait_for_automated_qc(&self, subjects: &HashMap<&'static str, Uuid>) -> anyhow::Result<()> {
        let tm = self.who("demo-tm")?;
        let deadline = Instant::now()
            + Duration::from_secs(60 + u64::try_from(self.app.settings().ingest_quiet_period_seconds).unwrap_or(0));
        let mut waiting: Vec<(&str, &str)> =
            SUBJECTS.iter().flat_map(|s| s.visits.iter().map(|v| (s.code, v.visit))).collect();
        while !waiting.is_empty() {
            self.app.run_due_jobs("demo-setup").await?;
            let mut still = Vec::new();
            for (code, visit) in waiting {
                let d = self.app.visit_detail(tm, subjects[code], visit).await?;
                if d.state == "received" {
                    still.push((code, visit));
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                if Instant::now() > deadline {
                    bail!("automated QC did not check {waiting:?} in time");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }

    /// QC reviewers decide, each decision e-signed: QC1 by demo-qc, QC2 by demo-qc2.
    async fn review(&self, subjects: &HashMap<&'static str, Uuid>) -> anyhow::Result<()> {
        let (qc1, qc2) = (self.who("demo-qc")?, self.who("demo-qc2")?);
        for s in SUBJECTS {
            for v in s.visits {
                let subject = subjects[s.code];
                let state = self.app.visit_detail(qc1, subject, v.visit).await?.state;
                let steps: &[(&Actor, Outcome, &str)] = match (v.qc, state.as_str()) {
                    (QcPlan::Pass, "awaiting_qc1") => &[(qc1, Outcome::Accept, ""), (qc2, Outcome::Accept, "")],
                    (QcPlan::Pass, "awaiting_qc2") => &[(qc2, Outcome::Accept, "")],
                    (QcPlan::Reject, "awaiting_qc1") => &[(qc1, Outcome::Reject, REJECT_REASON)],
                    (QcPlan::AutoFail, got) if got != "qc_failed" => {
                        bail!("{} {} should have failed automated QC but is {got}", s.code, v.visit)
                    }
                    (QcPlan::Pass | QcPlan::Reject | QcPlan::Await, "qc_failed" | "received_incomplete") => {
                        bail!("{} {} failed automated QC ({state}); the synthetic series is wrong", s.code, v.visit)
                    }
                    _ => &[],
                };
                for (actor, outcome, reason) in steps {
                    self.app
                        .decide_visit_qc(actor, subject, v.visit, *outcome, reason, creds(&actor.username))
                        .await
                        .with_context(|| format!("QC of {} {} by {}", s.code, v.visit, actor.username))?;
                }
            }
        }
        Ok(())
    }

    /// Readers read, blinded and e-signed: 101-001 by both (they disagree at the follow-up, so an
    /// adjudication opens), 101-002's baseline by reader 1.
    async fn read(&self, trial: Uuid, subjects: &HashMap<&'static str, Uuid>) -> anyhow::Result<()> {
        let plan: [(&str, &str, &str, Value); 5] = [
            ("101-001", "demo-reader1", "baseline", baseline_read(30.4, 20.6)),
            ("101-001", "demo-reader2", "baseline", baseline_read(31.3, 21.7)),
            // Reader 1: sum 61.8 mm vs 51.0 at baseline (+21 %, +10.8 mm): progression.
            ("101-001", "demo-reader1", "follow_up", follow_up_read(38.2, 23.6)),
            // Reader 2: 57.4 mm vs 53.0 (+8 %): stable disease.
            ("101-001", "demo-reader2", "follow_up", follow_up_read(35.3, 22.1)),
            ("101-002", "demo-reader1", "baseline", baseline_read(24.3, 16.2)),
        ];
        for (code, reader, kind, assessment) in plan {
            let actor = self.who(reader)?;
            let case = self
                .app
                .db()
                .read()
                .await?
                .read_case_of_subject(subjects[code])
                .await?
                .ok_or_else(|| anyhow!("subject {code} has no read case; did its visits pass QC?"))?;
            let tasks = self.app.my_read_tasks(actor, trial).await?;
            let task = tasks
                .iter()
                .find(|t| t.case_code == case.case_code && t.kind == kind)
                .ok_or_else(|| anyhow!("{reader} has no {kind} task for {code}"))?;
            if task.state == "submitted" {
                continue;
            }
            match self.app.submit_read(actor, task.task_id, Some(&assessment), creds(reader)).await {
                Ok(_) => {}
                Err(AppError::Invalid { message, .. }) => bail!("the demo read of {code} by {reader}: {message}"),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn staff_of(site: &str) -> &'static str {
    if site == "101" { "demo-site101" } else { "demo-site102" }
}

/// A fresh UID under the UUID-derived root 2.25.
fn new_uid() -> String {
    format!("2.25.{}", Uuid::new_v4().as_u128())
}

fn baseline_read(liver: f64, lung: f64) -> Value {
    json!({
        "slice_thickness_mm": 5,
        "targets": [
            {"id": "T1", "organ": "liver", "diameter_mm": liver},
            {"id": "T2", "organ": "lung", "diameter_mm": lung}
        ],
        "non_targets": [{"id": "NT1", "organ": "bone"}]
    })
}

fn follow_up_read(liver: f64, lung: f64) -> Value {
    json!({
        "targets": {"T1": {"value": liver}, "T2": {"value": lung}},
        "non_targets": {"NT1": {"status": "PRESENT"}},
        "new_lesions": []
    })
}

/// The lines printed under the server banner in demo mode.
pub fn banner(report: &DemoReport, http: &str) -> Vec<String> {
    let mut out = vec![
        "  DEMO MODE: example trial ACME-101 with synthetic, made-up patients. Not for real data.".to_string(),
        if report.created {
            format!("    set up in {:.1} s (trial {})", report.elapsed.as_secs_f64(), report.trial_id)
        } else {
            format!("    found the demo set up already (trial {}); nothing was added", report.trial_id)
        },
        format!("    open http://{http}/ and log in with one of these accounts, password {DEMO_PASSWORD}"),
    ];
    for a in ACCOUNTS {
        let role = match a.site {
            Some(site) => format!("{} {site}", a.role.as_str()),
            None => a.role.as_str().to_string(),
        };
        out.push(format!("      DEMO {:<17} {:<14} {}", a.username, role, a.shows));
    }
    out.push("    reset: stop corelab and delete the data directory (docs/demo.md)".into());
    out
}
