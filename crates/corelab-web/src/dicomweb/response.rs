//! The STOW-RS response: a PS3.18 Store Instances Response Module in DICOM JSON, the HTTP status
//! that sums it up, and PS3.18 `Warning: 299` header fields with the reasons in words.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use corelab_app::ingest::{IngestError, IngestOutcome};
use serde_json::{Map, Value, json};

/// The media type of the response body (exactly this: some clients compare it as a string).
pub const DICOM_JSON: &str = "application/dicom+json";

/// Failure Reason (0008,1197) values (PS3.18 Table I.2-2, and corelab's documented codes).
pub mod failure {
    /// Refused: out of resources; the client should retry later.
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: the instance does not belong to the study the request names (PS3.18's "Data Set
    /// does not match SOP Class" range, as its Studies Store Transaction uses for a mismatch).
    pub const WRONG_STUDY: u16 = 0xA900;
    /// Error: cannot understand (not a readable DICOM instance, refused, or cut off).
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Error: a different object is already stored under this SOP Instance UID; the new one is
    /// kept for review (the same code corelab's C-STORE SCP answers).
    pub const CONFLICT: u16 = 0xC111;
}

/// Warning Reason (0008,1196) values.
pub mod warning {
    /// Coercion of data elements: stored de-identified under a provisional pseudonym in the
    /// trial's inbox, because it could not be matched to an enrolled subject and visit.
    pub const INBOX: u16 = 0xB000;
}

/// At most this many `Warning` header fields (HTTP clients limit the number of header lines).
const MAX_WARNING_HEADERS: usize = 50;

/// What happened to the parts of one request.
#[derive(Default)]
pub struct Report {
    referenced: Vec<Value>,
    failed: Vec<Value>,
    warnings: Vec<String>,
    warned: usize,
    pub parts: usize,
    pub stored: usize,
    pub inboxed: usize,
}

fn ui(v: &str) -> Value {
    json!({"vr": "UI", "Value": [v]})
}

fn us(v: u16) -> Value {
    json!({"vr": "US", "Value": [v]})
}

/// Header text must be visible ASCII; anything else becomes `?`.
fn header_text(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

impl Report {
    fn item(sop_class_uid: &str, sop_instance_uid: &str) -> Map<String, Value> {
        let mut m = Map::new();
        if !sop_class_uid.is_empty() {
            m.insert("00081150".into(), ui(sop_class_uid));
        }
        if !sop_instance_uid.is_empty() {
            m.insert("00081155".into(), ui(sop_instance_uid));
        }
        m
    }

    fn warn(&mut self, part: usize, uid: &str, text: &str) {
        let who = if uid.is_empty() { format!("part {part}") } else { format!("part {part} ({uid})") };
        self.warnings.push(header_text(&format!("299 corelab: {who}: {text}")));
    }

    /// Records a part that could not be stored.
    pub fn fail(&mut self, part: usize, sop_class_uid: &str, sop_instance_uid: &str, reason: u16, text: &str) {
        let mut m = Report::item(sop_class_uid, sop_instance_uid);
        m.insert("00081197".into(), us(reason));
        self.failed.push(Value::Object(m));
        self.warn(part, sop_instance_uid, text);
    }

    /// Records the outcome of one part's ingest.
    pub fn add(&mut self, part: usize, result: Result<IngestOutcome, IngestError>) {
        match result {
            Ok(IngestOutcome::Stored { sop_class_uid, sop_instance_uid, .. }) => {
                let mut m = Report::item(&sop_class_uid, &sop_instance_uid);
                m.insert("00081190".into(), json!({"vr": "UR"}));
                self.referenced.push(Value::Object(m));
                self.stored += 1;
            }
            Ok(IngestOutcome::Inbox { sop_class_uid, sop_instance_uid, reason }) => {
                let mut m = Report::item(&sop_class_uid, &sop_instance_uid);
                m.insert("00081190".into(), json!({"vr": "UR"}));
                m.insert("00081196".into(), us(warning::INBOX));
                self.referenced.push(Value::Object(m));
                self.inboxed += 1;
                self.warned += 1;
                self.warn(part, &sop_instance_uid, &format!("kept in the trial's inbox for a coordinator: {reason}"));
            }
            Err(e) => {
                let text = e.to_string();
                match e {
                    IngestError::Conflict { sop_class_uid, sop_instance_uid } => {
                        self.fail(part, &sop_class_uid, &sop_instance_uid, failure::CONFLICT, &text)
                    }
                    IngestError::WrongStudy { sop_class_uid, sop_instance_uid } => {
                        self.fail(part, &sop_class_uid, &sop_instance_uid, failure::WRONG_STUDY, &text)
                    }
                    IngestError::Unreadable(_) | IngestError::Refused(_) => {
                        self.fail(part, "", "", failure::CANNOT_UNDERSTAND, &text)
                    }
                    IngestError::Internal(cause) => {
                        let incident = uuid::Uuid::new_v4();
                        tracing::error!(%incident, error = %cause, part, "STOW-RS: an instance could not be stored");
                        self.fail(
                            part,
                            "",
                            "",
                            failure::OUT_OF_RESOURCES,
                            &format!("the server could not store it (incident {incident}); retry later"),
                        )
                    }
                }
            }
        }
    }

    /// A free-text reason about the whole request.
    pub fn note(&mut self, text: &str) {
        self.warnings.push(header_text(&format!("299 corelab: {text}")));
    }

    pub fn failed(&self) -> usize {
        self.failed.len()
    }

    /// The PS3.18 status for a well-formed request: 200 all stored without warnings, 202 some
    /// stored with warnings or failures, 409 none stored.
    pub fn status(&self) -> StatusCode {
        if self.referenced.is_empty() {
            StatusCode::CONFLICT
        } else if self.failed.is_empty() && self.warned == 0 {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        }
    }

    /// The Store Instances Response Module.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        // Retrieve URL is type 2: present, empty until corelab serves WADO-RS.
        m.insert("00081190".into(), json!({"vr": "UR"}));
        if !self.failed.is_empty() {
            m.insert("00081198".into(), json!({"vr": "SQ", "Value": self.failed}));
        }
        if !self.referenced.is_empty() {
            m.insert("00081199".into(), json!({"vr": "SQ", "Value": self.referenced}));
        }
        Value::Object(m)
    }

    /// The response with `status`.
    pub fn into_response(self, status: StatusCode) -> Response {
        let body = self.body().to_string();
        let mut resp = (status, [(header::CONTENT_TYPE, DICOM_JSON)], body).into_response();
        let total = self.warnings.len();
        let h = resp.headers_mut();
        for w in self.warnings.iter().take(MAX_WARNING_HEADERS) {
            if let Ok(v) = HeaderValue::from_str(w) {
                h.append(header::WARNING, v);
            }
        }
        if total > MAX_WARNING_HEADERS
            && let Ok(v) = HeaderValue::from_str(&format!(
                "299 corelab: {} more warnings not shown; the response body lists every instance",
                total - MAX_WARNING_HEADERS
            ))
        {
            h.append(header::WARNING, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(uid: &str) -> Result<IngestOutcome, IngestError> {
        Ok(IngestOutcome::Stored {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: uid.into(),
            study_instance_uid: "2.25.9".into(),
            duplicate: false,
        })
    }

    #[test]
    fn status_follows_ps3_18() {
        let mut r = Report::default();
        r.add(1, stored("2.25.1"));
        assert_eq!(r.status(), StatusCode::OK);
        r.add(
            2,
            Ok(IngestOutcome::Inbox {
                sop_class_uid: "1.2".into(),
                sop_instance_uid: "2.25.2".into(),
                reason: "x".into(),
            }),
        );
        assert_eq!(r.status(), StatusCode::ACCEPTED);

        let mut r = Report::default();
        r.add(1, stored("2.25.1"));
        r.add(2, Err(IngestError::Unreadable("garbage".into())));
        assert_eq!(r.status(), StatusCode::ACCEPTED);

        let mut r = Report::default();
        r.add(1, Err(IngestError::Unreadable("garbage".into())));
        r.add(2, Err(IngestError::Conflict { sop_class_uid: "1.2".into(), sop_instance_uid: "2.25.3".into() }));
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let b = r.body();
        let failed = b["00081198"]["Value"].as_array().unwrap();
        assert_eq!(failed[0]["00081197"]["Value"][0], 0xC000);
        assert!(failed[0].get("00081155").is_none());
        assert_eq!(failed[1]["00081197"]["Value"][0], 0xC111);
        assert_eq!(failed[1]["00081155"]["Value"][0], "2.25.3");
        assert!(b.get("00081199").is_none());
    }

    #[test]
    fn warnings_are_capped_and_ascii() {
        let mut r = Report::default();
        for i in 0..60 {
            r.add(i, Err(IngestError::Refused(format!("naïve reason {i}\r\n"))));
        }
        let resp = r.into_response(StatusCode::CONFLICT);
        let ws: Vec<_> = resp.headers().get_all(header::WARNING).iter().collect();
        assert_eq!(ws.len(), MAX_WARNING_HEADERS + 1);
        assert!(ws[0].to_str().unwrap().starts_with("299 corelab: part 0: na?ve reason 0"));
        assert_eq!(resp.headers()[header::CONTENT_TYPE], DICOM_JSON);
    }
}
