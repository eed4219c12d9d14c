//! A populated trial for identity and workflow tests: two trials, users in every role, two
//! qualified sites with one subject each.

use std::collections::HashMap;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Backend, TestApp, client, spawn_app};

pub const PASSWORD: &str = "Trial-Role-Pass-9";

/// Every role the matrix covers, as the name of a logged-in client in [`World::clients`].
pub const ROLES: &[&str] = &["admin", "tm", "site_a", "qc", "reader", "adjudicator", "monitor", "sponsor"];

pub fn charter_text(name: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charters").join(name);
    std::fs::read_to_string(root).unwrap()
}

/// A CT slice with PHI in its header, as a site would send it.
pub fn ct_instance(patient_name: &str, slice_thickness: &str) -> Vec<u8> {
    let sop = format!("1.2.826.0.1.3680043.8.498.{}", rand_digits());
    let e = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let pixels = vec![0u8; 512 * 512 * 2];
    let obj = InMemDicomObject::from_element_iter(vec![
        e(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        e(tags::SOP_INSTANCE_UID, VR::UI, &sop),
        e(tags::STUDY_DATE, VR::DA, "20261101"),
        e(tags::MODALITY, VR::CS, "CT"),
        e(tags::INSTITUTION_NAME, VR::LO, "Hopital Saint-Louis Radiologie"),
        e(tags::SERIES_DESCRIPTION, VR::LO, "PHANTOM PORTAL VENOUS"),
        e(tags::PATIENT_NAME, VR::PN, patient_name),
        e(tags::PATIENT_ID, VR::LO, "MRN-7731-PHI"),
        e(tags::PATIENT_BIRTH_DATE, VR::DA, "19610203"),
        e(tags::SLICE_THICKNESS, VR::DS, slice_thickness),
        e(tags::KVP, VR::DS, "120"),
        e(tags::STUDY_INSTANCE_UID, VR::UI, &format!("{sop}.1")),
        e(tags::SERIES_INSTANCE_UID, VR::UI, &format!("{sop}.2")),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
        e(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(512_u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(512_u16)),
        e(tags::PIXEL_SPACING, VR::DS, "0.7\\0.7"),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12_u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11_u16)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0_u16)),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels)),
    ]);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").implementation_class_uid("1.2.3.4"),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    bytes
}

fn rand_digits() -> String {
    uuid::Uuid::new_v4().as_u128().to_string()[..20].to_string()
}

pub struct World {
    pub t: TestApp,
    pub trial: Uuid,
    pub other_trial: Uuid,
    pub clients: HashMap<&'static str, reqwest::Client>,
    pub user_ids: HashMap<&'static str, Uuid>,
    pub subject_a: Uuid,
    pub subject_b: Uuid,
    pub other_subject: Uuid,
    pub reader_grant: Uuid,
    pub other_grant: Uuid,
    pub document: Uuid,
    pub query: Uuid,
    pub other_query: Uuid,
    pub inbox_item: Uuid,
    pub other_inbox_item: Uuid,
}

pub async fn check(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let url = r.url().to_string();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{url}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

impl World {
    pub fn c(&self, role: &str) -> &reqwest::Client {
        &self.clients[role]
    }

    pub fn url(&self, path: &str) -> String {
        self.t.url(path)
    }

    pub async fn login(t: &TestApp, username: &str) -> reqwest::Client {
        let c = client();
        let r = c
            .post(t.url("/api/v1/auth/login"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login {username}");
        c
    }
}

/// Builds the world on `backend`.
pub async fn world(backend: Backend) -> World {
    let t = spawn_app(backend).await;
    t.login_admin().await;
    let admin = t.client.clone();
    let trial = check(
        admin
            .post(t.url("/api/v1/trials"))
            .json(&json!({"charter": charter_text("oncology-ct-recist.toml")}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let other_trial: Uuid = check(
        admin
            .post(t.url("/api/v1/trials"))
            .json(&json!({"charter": charter_text("cardiology-lvef.toml")}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // One account per role, plus site B staff and a second reader.
    let people: &[(&str, &str)] = &[
        ("tm", "Tessa Manager"),
        ("site_a", "Sam Sitea"),
        ("site_b", "Bea Siteb"),
        ("qc", "Quinn Checker"),
        ("reader", "Rita Reader"),
        ("reader2", "Rob Reader"),
        ("adjudicator", "Ada Judge"),
        ("monitor", "Mo Nitor"),
        ("sponsor", "Spencer Sponsor"),
    ];
    let mut user_ids = HashMap::new();
    user_ids.insert("admin", Uuid::nil());
    for (u, name) in people {
        let v = check(
            admin
                .post(t.url("/api/v1/users"))
                .json(&json!({"username": u, "display_name": name, "password": PASSWORD}))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        user_ids.insert(*u, v["user"]["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    let grant = |user: &str, role: &str, site: Option<&str>, trial: Uuid| {
        let body = json!({"user_id": user_ids[user], "role": role, "site_id": site});
        let url = t.url(&format!("/api/v1/trials/{trial}/grants"));
        let admin = admin.clone();
        async move { check(admin.post(url).json(&body).send().await.unwrap(), 201).await }
    };
    grant("tm", "trial_manager", None, trial).await;
    grant("site_a", "site_user", Some("101"), trial).await;
    grant("site_b", "site_user", Some("102"), trial).await;
    grant("qc", "qc_reviewer", None, trial).await;
    let reader_grant = grant("reader", "reader", None, trial).await["id"].as_str().unwrap().parse().unwrap();
    grant("reader2", "reader", None, trial).await;
    grant("adjudicator", "adjudicator", None, trial).await;
    grant("monitor", "monitor", None, trial).await;
    grant("sponsor", "sponsor", None, trial).await;
    let other_grant =
        grant("site_b", "site_user", Some("NL01"), other_trial).await["id"].as_str().unwrap().parse().unwrap();

    let mut clients = HashMap::new();
    clients.insert("admin", admin.clone());
    for (u, _) in people {
        clients.insert(*u, World::login(&t, u).await);
    }

    // Sites qualify: a phantom scan each, approved by QC with an e-signature.
    for (site, staff) in [("101", "site_a"), ("102", "site_b")] {
        let r = clients[staff]
            .post(t.url(&format!("/api/v1/trials/{trial}/sites/{site}/qualification/scans")))
            .header("content-type", "application/dicom")
            .body(ct_instance("PHANTOM^ACR", "2.5"))
            .send()
            .await
            .unwrap();
        check(r, 201).await;
    }
    for (i, site) in ["101", "102"].iter().enumerate() {
        let mut body = json!({"approve": true, "password": PASSWORD});
        if i == 0 {
            body["username"] = json!("qc");
        }
        let r = clients["qc"]
            .post(t.url(&format!("/api/v1/trials/{trial}/sites/{site}/qualification/decision")))
            .json(&body)
            .send()
            .await
            .unwrap();
        check(r, 200).await;
    }
    // The other trial: the administrator qualifies its site and enrolls a subject there.
    check(
        admin
            .post(t.url(&format!("/api/v1/trials/{other_trial}/sites/NL01/qualification/scans")))
            .body(ct_instance("PHANTOM^ACR", "8"))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    check(
        admin
            .post(t.url(&format!("/api/v1/trials/{other_trial}/sites/NL01/qualification/decision")))
            .json(&json!({"approve": true, "username": "admin", "password": crate::support::ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let enroll = |c: &reqwest::Client, trial: Uuid, site: &str, subject: &str| {
        let req = c
            .post(t.url(&format!("/api/v1/trials/{trial}/subjects")))
            .json(&json!({"site_id": site, "subject_id": subject, "anchor_date": "2026-10-01", "arm": if trial == other_trial { "HW3" } else { "A" }}));
        async move { check(req.send().await.unwrap(), 201).await["id"].as_str().unwrap().parse::<Uuid>().unwrap() }
    };
    let subject_a = enroll(&clients["site_a"], trial, "101", "101-001").await;
    let subject_b = enroll(&clients["site_b"], trial, "102", "102-001").await;
    let other_subject = enroll(&admin, other_trial, "NL01", "NL010001").await;
    let document = check(
        admin
            .post(t.url("/api/v1/documents?name=charter-v1.pdf"))
            .body(b"%PDF-1.4 charter".to_vec())
            .send()
            .await
            .unwrap(),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let raise = |c: &reqwest::Client, subject: Uuid| {
        let req = c.post(t.url(&format!("/api/v1/subjects/{subject}/queries"))).json(
            &json!({"visit_id": "BL", "title": "Baseline scan date", "body": "Please confirm the baseline scan date."}),
        );
        async move { check(req.send().await.unwrap(), 201).await["id"].as_str().unwrap().parse::<Uuid>().unwrap() }
    };
    let query = raise(&clients["qc"], subject_a).await;
    let other_query = raise(&admin, other_subject).await;
    let inbox_item = unmatched_instance(&t, trial, "101").await;
    let other_inbox_item = unmatched_instance(&t, other_trial, "NL01").await;
    World {
        t,
        trial,
        other_trial,
        clients,
        user_ids,
        subject_a,
        subject_b,
        other_subject,
        reader_grant,
        other_grant,
        document,
        query,
        other_query,
        inbox_item,
        other_inbox_item,
    }
}

/// Ingests, as site `site` would send it, an instance whose patient is not enrolled: it lands in the
/// inbox. Returns the inbox item.
pub async fn unmatched_instance(t: &TestApp, trial: Uuid, site: &str) -> Uuid {
    let target = corelab_app::ingest::IngestTarget {
        trial_id: trial,
        site_id: site.into(),
        source: corelab_app::ingest::Source::Upload,
        sender: "test".into(),
        sender_role: "site_user".into(),
        sender_id: None,
    };
    let setup = t.app.ingest_setup(&target).await.unwrap();
    let outcome =
        t.app.ingest(&setup, target, std::io::Cursor::new(ct_instance("UNKNOWN^PATIENT", "2.5"))).await.unwrap();
    assert!(matches!(outcome, corelab_app::ingest::IngestOutcome::Inbox { .. }), "{outcome:?}");
    let mut tx = t.app.db().read().await.unwrap();
    tx.inbox(trial).await.unwrap().into_iter().rfind(|i| i.state == "unassigned").unwrap().id
}
