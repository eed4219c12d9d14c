//! Electronic signatures (21 CFR 11.50, 11.70, 11.200).
//!
//! A signature records the signer's printed name, the time and the meaning, and is bound to the
//! SHA-256 of the signed record's content. It is shown with the record; when the record changes
//! afterwards, the hash no longer matches and the signature shows as invalidated.
//! Signing needs the password again: the first signing in a login session needs both the
//! username and the password, later ones in the same session the password.

use corelab_store::identity::SignatureRow;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{change, record};
use crate::auth::verify_password;
use crate::{Actor, App, AppError};

/// What the signer typed to sign.
#[derive(Debug, Clone)]
pub struct SigningCredentials {
    /// Required at the first signing of a session.
    pub username: Option<String>,
    pub password: String,
}

/// A signature as displayed with its record.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureView {
    pub id: Uuid,
    pub signer_name: String,
    pub signed_at: chrono::DateTime<chrono::Utc>,
    pub meaning: String,
    /// False when the record changed after signing.
    pub valid: bool,
    /// "signed by {name} on {time} UTC: {meaning}", with "(invalidated: the record changed after
    /// signing)" when it no longer holds.
    pub manifestation: String,
}

/// The hash a signature binds to: SHA-256 of the record's canonical JSON.
pub fn content_hash(content: &Value) -> String {
    hex::encode(Sha256::digest(content.to_string().as_bytes()))
}

impl App {
    /// Checks the signer's credentials for an e-signature. Token callers cannot sign.
    pub(crate) async fn check_signing(&self, actor: &Actor, creds: &SigningCredentials) -> Result<(), AppError> {
        let (Some(uid), Some(session)) = (actor.user_id, &actor.session) else {
            return Err(AppError::Forbidden(
                "e-signatures need a login session with your password; API tokens cannot sign".into(),
            ));
        };
        let mut tx = self.db().read().await?;
        let user = tx.user_by_id(uid).await?.ok_or_else(|| AppError::Unauthenticated("log in again".into()))?;
        let first_in_session = tx.session(session).await?.is_none_or(|s| s.signed_at.is_none());
        drop(tx);
        if first_in_session {
            match &creds.username {
                Some(u) if u == &user.username => {}
                Some(_) => {
                    return Err(AppError::invalid("username", "the username does not match the logged-in account"));
                }
                None => {
                    return Err(AppError::invalid(
                        "username",
                        "the first signature of a session needs both your username and your password",
                    ));
                }
            }
        }
        if !verify_password(&creds.password, &user.password_hash).await? {
            let now = self.clock().now();
            let mut rec = record(actor, now, "signature_failed", "user", uid, vec![]);
            rec.reason = Some("wrong password at signing".into());
            let mut tx = self.db().begin().await?;
            tx.append_audit(rec).await?;
            tx.commit().await?;
            return Err(AppError::invalid("password", "the password is wrong; the record was not signed"));
        }
        Ok(())
    }

    /// Whether the actor's next signature is the first of its login session, and so needs the
    /// username as well as the password (what a signing form must ask for).
    pub async fn signing_needs_username(&self, actor: &Actor) -> Result<bool, AppError> {
        let Some(session) = &actor.session else { return Ok(true) };
        let mut tx = self.db().read().await?;
        Ok(tx.session(session).await?.is_none_or(|s| s.signed_at.is_none()))
    }

    /// Writes a signature on `record_type`/`record_id` whose content is `content`, inside the
    /// caller's transaction, after [`App::check_signing`] succeeded.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_signature(
        &self,
        tx: &mut corelab_store::Tx,
        actor: &Actor,
        trial_id: Option<Uuid>,
        record_type: &str,
        record_id: &str,
        meaning: &str,
        content: &Value,
    ) -> Result<SignatureRow, AppError> {
        let now = self.clock().now();
        let signer_id = actor.user_id.ok_or_else(|| AppError::Forbidden("only a person can sign".into()))?;
        let row = SignatureRow {
            id: Uuid::now_v7(),
            record_type: record_type.to_string(),
            record_id: record_id.to_string(),
            trial_id,
            signer_id,
            signer_name: actor.display_name.clone(),
            meaning: meaning.to_string(),
            content_hash: content_hash(content),
            signed_at: now,
        };
        tx.insert_signature(&row).await?;
        if let Some(session) = &actor.session {
            tx.mark_session_signed(session, now).await?;
        }
        let mut rec = record(
            actor,
            now,
            "sign",
            record_type,
            record_id,
            vec![
                change("meaning", Value::Null, meaning),
                change("signer_name", Value::Null, row.signer_name.clone()),
                change("content_hash", Value::Null, row.content_hash.clone()),
            ],
        );
        rec.trial_id = trial_id;
        tx.append_audit(rec).await?;
        Ok(row)
    }

    /// The signatures of a record, each checked against the record's current content.
    pub(crate) async fn signature_views(
        &self,
        record_type: &str,
        record_id: &str,
        current: &Value,
    ) -> Result<Vec<SignatureView>, AppError> {
        let mut tx = self.db().read().await?;
        let rows = tx.signatures_of(record_type, record_id).await?;
        let hash = content_hash(current);
        Ok(rows
            .into_iter()
            .map(|s| {
                let valid = s.content_hash == hash;
                let mut manifestation = format!(
                    "signed by {} on {} UTC: {}",
                    s.signer_name,
                    s.signed_at.format("%Y-%m-%d %H:%M:%S"),
                    s.meaning
                );
                if !valid {
                    manifestation.push_str(" (invalidated: the record changed after signing)");
                }
                SignatureView {
                    id: s.id,
                    signer_name: s.signer_name,
                    signed_at: s.signed_at,
                    meaning: s.meaning,
                    valid,
                    manifestation,
                }
            })
            .collect())
    }

    /// Signs a subject's enrollment record ("enrollment confirmed") as site staff or trial manager.
    pub async fn sign_subject(
        &self,
        actor: &Actor,
        subject: Uuid,
        meaning: &str,
        creds: SigningCredentials,
    ) -> Result<crate::subjects::SubjectView, AppError> {
        let view = self.subject(actor, subject).await?;
        let access = self.trial_access(actor, view.trial_id).await?;
        self.require(
            actor,
            &access,
            &[corelab_domain::access::Role::SiteUser, corelab_domain::access::Role::TrialManager],
            "sign subject records",
            "subject",
            &subject.to_string(),
        )
        .await?;
        let meaning = meaning.trim();
        if meaning.is_empty() || meaning.len() > 200 {
            return Err(AppError::invalid("meaning", "say what the signature means, e.g. \"enrollment confirmed\""));
        }
        self.check_signing(actor, &creds).await?;
        let mut tx = self.db().begin().await?;
        let row = tx.subject(subject).await?.ok_or_else(|| AppError::NotFound(format!("no subject {subject}")))?;
        let content = crate::subjects::subject_content(&row);
        self.write_signature(&mut tx, actor, Some(row.trial_id), "subject", &subject.to_string(), meaning, &content)
            .await?;
        tx.commit().await?;
        self.subject(actor, subject).await
    }
}
