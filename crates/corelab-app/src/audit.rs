//! Building audit records for use cases.

use chrono::{DateTime, Utc};
use corelab_store::audit::NewAuditRecord;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Actor;

/// One changed field: `old` is `null` on create, `new` is `null` on delete.
pub fn change(field: &str, old: impl Into<Value>, new: impl Into<Value>) -> Value {
    json!({"field": field, "old": old.into(), "new": new.into()})
}

/// An audit record for `action` on `object_type`/`object_id` by `actor`.
pub fn record(
    actor: &Actor,
    at: DateTime<Utc>,
    action: &str,
    object_type: &str,
    object_id: impl ToString,
    changes: Vec<Value>,
) -> NewAuditRecord {
    NewAuditRecord {
        at,
        actor_id: actor.user_id,
        actor_name: actor.username.clone(),
        actor_role: actor.role.clone(),
        action: action.to_string(),
        object_type: object_type.to_string(),
        object_id: object_id.to_string(),
        trial_id: None,
        site_id: None,
        changes: Value::Array(changes),
        reason: None,
    }
}

/// The record for something the system did on its own (first start, background jobs).
pub fn system_record(
    at: DateTime<Utc>,
    action: &str,
    object_type: &str,
    object_id: impl ToString,
    changes: Vec<Value>,
) -> NewAuditRecord {
    record(&Actor::system(), at, action, object_type, object_id, changes)
}

/// An audit record of a trial-scoped action, acted in `role`.
#[allow(clippy::too_many_arguments)]
pub fn trial_record(
    actor: &Actor,
    role: &str,
    trial_id: Uuid,
    site_id: Option<&str>,
    at: DateTime<Utc>,
    action: &str,
    object_type: &str,
    object_id: impl ToString,
    changes: Vec<Value>,
) -> NewAuditRecord {
    let mut rec = record(actor, at, action, object_type, object_id, changes);
    rec.actor_role = role.to_string();
    rec.trial_id = Some(trial_id);
    rec.site_id = site_id.map(str::to_string);
    rec
}
