//! Accounts, passwords and login sessions.
//!
//! Passwords are stored only as argon2id PHC strings. A session cookie carries a random token;
//! the database keeps its SHA-256, so a copy of the database does not let anyone log in.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::Duration;
use corelab_store::records::{SessionRow, UserRow};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{change, record, system_record};
use crate::{App, AppError};

/// Who is acting. Built by authentication, never from request input.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub username: String,
    pub display_name: String,
    pub is_system_admin: bool,
    /// The role the actor acts in, as written to the audit trail.
    pub role: String,
    pub must_change_password: bool,
    /// Hash of the session token when acting through a login session.
    pub session: Option<String>,
    /// Set when acting through an API token: the one trial role the token carries.
    pub token: Option<crate::access::TokenScope>,
}

impl Actor {
    /// corelab itself (first start, background jobs).
    pub fn system() -> Actor {
        Actor {
            user_id: None,
            username: "corelab".into(),
            display_name: "corelab system".into(),
            is_system_admin: false,
            role: "system".into(),
            must_change_password: false,
            session: None,
            token: None,
        }
    }

    /// An operator running a command-line tool on the server (has database access already).
    pub fn operator(os_user: &str) -> Actor {
        Actor {
            user_id: None,
            username: format!("cli:{os_user}"),
            display_name: format!("operator {os_user} (command line)"),
            is_system_admin: true,
            role: "operator".into(),
            must_change_password: false,
            session: None,
            token: None,
        }
    }

    pub(crate) fn from_user(u: &UserRow, session: Option<String>) -> Actor {
        Actor {
            user_id: Some(u.id),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            is_system_admin: u.is_system_admin,
            role: if u.is_system_admin { "system_admin".into() } else { "user".into() },
            must_change_password: u.must_change_password,
            session,
            token: None,
        }
    }
}

/// Login and session policy.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// A session ends after this long without a request.
    pub session_idle_timeout: Duration,
    /// Failed logins in a row before the account locks.
    pub lockout_threshold: i64,
    pub lockout_duration: Duration,
    pub min_password_length: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            session_idle_timeout: Duration::minutes(30),
            lockout_threshold: 5,
            lockout_duration: Duration::minutes(15),
            min_password_length: 12,
        }
    }
}

/// What a successful login returns: the token for the cookie (shown once, never stored).
#[derive(Debug)]
pub struct LoginOutcome {
    pub token: String,
    pub actor: Actor,
}

/// The message for every failed login: it does not tell which part was wrong.
pub const LOGIN_FAILED: &str = "wrong username or password, or the account is locked or disabled; \
     after repeated failures the account locks for a while: ask a system administrator if it stays locked";

/// Checks the password rules; the message says what is missing.
pub fn check_password_rules(password: &str, username: &str, settings: &AuthSettings) -> Result<(), AppError> {
    let mut missing = Vec::new();
    if password.chars().count() < settings.min_password_length {
        missing.push(format!("at least {} characters", settings.min_password_length));
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|&&b| b).count() < 3 {
        missing.push("three of: lower-case, upper-case, digit, symbol".to_string());
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        missing.push("not containing the username".to_string());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid("password", format!("the password must have {}", missing.join(", "))))
    }
}

/// Hashes a password with argon2id (on a blocking thread: it is deliberately slow).
pub async fn hash_password(password: &str) -> Result<String, AppError> {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default().hash_password(pw.as_bytes()).map(|h| h.to_string()).map_err(AppError::internal)
    })
    .await
    .map_err(AppError::internal)?
}

/// Verifies a password against a stored PHC string.
pub async fn verify_password(password: &str, phc: &str) -> Result<bool, AppError> {
    let pw = password.to_string();
    let phc = phc.to_string();
    tokio::task::spawn_blocking(move || match PasswordHash::new(&phc) {
        Ok(parsed) => Ok(Argon2::default().verify_password(pw.as_bytes(), &parsed).is_ok()),
        Err(e) => Err(AppError::internal(e)),
    })
    .await
    .map_err(AppError::internal)?
}

/// A random password that meets the rules, for the first administrator and resets.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    loop {
        let body: String = (0..20).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect();
        // Groups of five with dashes: easy to read out and type, and the dash is a symbol.
        let pw = format!("{}-{}-{}-{}", &body[0..5], &body[5..10], &body[10..15], &body[15..20]);
        if check_password_rules(&pw, "", &AuthSettings::default()).is_ok() {
            return pw;
        }
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What `bootstrap_admin` did on this start.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Accounts existed already.
    Existing,
    /// The first administrator was created with the given password.
    Created { username: String, generated_password: Option<String> },
}

impl App {
    /// On first start, creates the initial system administrator `admin`. The password comes from
    /// `password` (configuration) or is generated and returned so the caller prints it once.
    pub async fn bootstrap_admin(&self, password: Option<&str>) -> Result<Bootstrap, AppError> {
        let mut tx = self.db().begin().await?;
        if tx.count_users().await? > 0 {
            return Ok(Bootstrap::Existing);
        }
        let username = "admin".to_string();
        let (pw, generated) = match password {
            Some(p) => {
                check_password_rules(p, &username, &self.settings().auth).map_err(|e| match e {
                    AppError::Invalid { message, .. } => {
                        AppError::invalid("admin.password", format!("CORELAB_ADMIN_PASSWORD is too weak: {message}"))
                    }
                    other => other,
                })?;
                (p.to_string(), None)
            }
            None => {
                let p = generate_password();
                (p.clone(), Some(p))
            }
        };
        let now = self.clock().now();
        let user = UserRow {
            id: Uuid::now_v7(),
            username: username.clone(),
            display_name: "System Administrator".into(),
            email: None,
            password_hash: hash_password(&pw).await?,
            is_system_admin: true,
            disabled: false,
            failed_logins: 0,
            locked_until: None,
            must_change_password: generated.is_some(),
            password_changed_at: now,
            created_at: now,
        };
        match tx.insert_user(&user).await {
            Ok(()) => {}
            // Another corelab process created it first; that one prints the password.
            Err(e) if e.is_unique_violation() => return Ok(Bootstrap::Existing),
            Err(e) => return Err(e.into()),
        }
        tx.append_audit(system_record(
            now,
            "create",
            "user",
            user.id,
            vec![change("username", serde_json::Value::Null, username.clone()), change("is_system_admin", false, true)],
        ))
        .await?;
        tx.commit().await?;
        Ok(Bootstrap::Created { username, generated_password: generated })
    }

    /// Logs in with username and password; every attempt, good or bad, is audited.
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginOutcome, AppError> {
        let now = self.clock().now();
        let settings = &self.settings().auth;
        let mut tx = self.db().begin().await?;
        let Some(user) = tx.user_by_username(username).await? else {
            // Spend the same time as a real check so response times do not reveal accounts.
            let _ = verify_password(password, DUMMY_HASH).await;
            let mut rec = system_record(now, "login_failed", "user", username, vec![]);
            rec.actor_name = username.chars().take(64).collect();
            rec.actor_role = "anonymous".into();
            rec.reason = Some("unknown username".into());
            tx.append_audit(rec).await?;
            tx.commit().await?;
            return Err(AppError::Unauthenticated(LOGIN_FAILED.into()));
        };
        let actor = Actor::from_user(&user, None);
        let locked = user.locked_until.is_some_and(|t| t > now);
        let ok = !user.disabled && !locked && verify_password(password, &user.password_hash).await?;
        if !ok {
            let reason = if user.disabled {
                "account disabled"
            } else if locked {
                "account locked"
            } else {
                "wrong password"
            };
            let failed = if locked { user.failed_logins } else { user.failed_logins + 1 };
            let lock_until = if !locked && failed >= settings.lockout_threshold {
                Some(now + settings.lockout_duration)
            } else {
                user.locked_until
            };
            tx.set_login_state(user.id, failed, lock_until).await?;
            let mut rec = record(&actor, now, "login_failed", "user", user.id, vec![]);
            rec.reason = Some(reason.into());
            tx.append_audit(rec).await?;
            if lock_until != user.locked_until {
                let mut rec = record(
                    &actor,
                    now,
                    "lock",
                    "user",
                    user.id,
                    vec![change("locked_until", serde_json::Value::Null, lock_until.map(|t| t.to_rfc3339()))],
                );
                rec.reason = Some(format!("{failed} failed logins in a row"));
                tx.append_audit(rec).await?;
            }
            tx.commit().await?;
            return Err(AppError::Unauthenticated(LOGIN_FAILED.into()));
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        let th = token_hash(&token);
        if user.failed_logins != 0 || user.locked_until.is_some() {
            tx.set_login_state(user.id, 0, None).await?;
        }
        tx.insert_session(&SessionRow {
            token_hash: th.clone(),
            user_id: user.id,
            created_at: now,
            last_seen_at: now,
            signed_at: None,
            ended_at: None,
        })
        .await?;
        tx.append_audit(record(&actor, now, "login", "session", &th[..16], vec![])).await?;
        tx.commit().await?;
        Ok(LoginOutcome { token, actor: Actor::from_user(&user, Some(th)) })
    }

    /// Resolves a session token to its actor, ending the session if it sat idle too long.
    pub async fn authenticate_session(&self, token: &str) -> Result<Actor, AppError> {
        let expired = || AppError::Unauthenticated("your session has ended; log in again".into());
        let now = self.clock().now();
        let th = token_hash(token);
        let mut tx = self.db().read().await?;
        let session = tx.session(&th).await?.ok_or_else(expired)?;
        if session.ended_at.is_some() {
            return Err(expired());
        }
        let user = tx.user_by_id(session.user_id).await?.ok_or_else(expired)?;
        drop(tx);
        if user.disabled {
            return Err(expired());
        }
        if now - session.last_seen_at > self.settings().auth.session_idle_timeout {
            let mut tx = self.db().begin().await?;
            if tx.end_session(&th, now).await? {
                let actor = Actor::from_user(&user, Some(th.clone()));
                let mut rec = record(&actor, now, "logout", "session", &th[..16], vec![]);
                rec.reason = Some("idle timeout".into());
                tx.append_audit(rec).await?;
            }
            tx.commit().await?;
            return Err(expired());
        }
        // Refresh the idle timer at most once a minute: a write per request would serialise reads.
        if now - session.last_seen_at > Duration::seconds(60) {
            let mut tx = self.db().begin().await?;
            tx.touch_session(&th, now).await?;
            tx.commit().await?;
        }
        Ok(Actor::from_user(&user, Some(th)))
    }

    /// Ends the actor's session.
    pub async fn logout(&self, actor: &Actor) -> Result<(), AppError> {
        let Some(th) = &actor.session else { return Ok(()) };
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        if tx.end_session(th, now).await? {
            tx.append_audit(record(actor, now, "logout", "session", &th[..16], vec![])).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Changes the actor's own password, after checking the current one.
    pub async fn change_password(&self, actor: &Actor, current: &str, new: &str) -> Result<(), AppError> {
        let user_id = actor.user_id.ok_or_else(|| AppError::Forbidden("no account to change".into()))?;
        let mut tx = self.db().begin().await?;
        let user = tx.user_by_id(user_id).await?.ok_or_else(|| AppError::NotFound("no such account".into()))?;
        if !verify_password(current, &user.password_hash).await? {
            return Err(AppError::invalid("current_password", "the current password is wrong"));
        }
        check_password_rules(new, &user.username, &self.settings().auth)?;
        if verify_password(new, &user.password_hash).await? {
            return Err(AppError::invalid("new_password", "the new password must differ from the current one"));
        }
        let now = self.clock().now();
        tx.set_password(user.id, &hash_password(new).await?, false, now).await?;
        // Values of secrets are never audited, only that they changed.
        tx.append_audit(record(actor, now, "change_password", "user", user.id, vec![change("password", "***", "***")]))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A valid argon2id hash of a random string, used to equalise timing for unknown usernames.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZjM2YjYzZWQ3ZTU5N2I0ZWQ1OWE0NjE2MzhmYWQzMjE";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules_name_what_is_missing() {
        let s = AuthSettings::default();
        let e = check_password_rules("short", "bob", &s).unwrap_err().to_string();
        assert!(e.contains("at least 12 characters"), "{e}");
        let e = check_password_rules("alllowercaseletters", "bob", &s).unwrap_err().to_string();
        assert!(e.contains("three of"), "{e}");
        let e = check_password_rules("Bob-Password-2026", "bob", &s).unwrap_err().to_string();
        assert!(e.contains("username"), "{e}");
        assert!(check_password_rules("Correct-Horse-42", "bob", &s).is_ok());
    }

    #[test]
    fn generated_passwords_meet_the_rules_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        assert!(check_password_rules(&a, "admin", &AuthSettings::default()).is_ok());
        assert_eq!(a.len(), 23);
    }

    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let h = hash_password("Correct-Horse-42").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("Correct-Horse-42", &h).await.unwrap());
        assert!(!verify_password("Correct-Horse-43", &h).await.unwrap());
        // The dummy hash parses, so the unknown-user path costs a real verification.
        assert!(!verify_password("x", DUMMY_HASH).await.unwrap());
    }
}
