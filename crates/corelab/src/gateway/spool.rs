//! The gateway's durable on-disk queue and the site-only secrets beside it.
//!
//! ```text
//! SPOOL/
//!   queue/<de-identified SOP Instance UID>.dcm   de-identified, waiting for central's acknowledgement
//!   held/<random>.held                           originals waiting for assignment, sealed with local.key
//!   failed/<uid>.dcm + <uid>.reason              refused by central for good (the reason is central's)
//!   tmp/                                         partial writes; emptied at start
//!   journal.log                                  one line per acknowledged instance (UID, time)
//!   state.json                                   last success, last error (for `corelab gateway status`)
//!   local.key                                    32 random bytes (hex, 0600): seals held/ and mapping.enc
//!   mapping.enc                                  PatientID -> subject, study -> visit (sealed)
//! ```
//!
//! Every file is written to `tmp/`, fsynced, renamed into place and its directory fsynced, so a
//! crash leaves either the whole file or none. An instance leaves `queue/` only after central
//! acknowledged it; a crash between the acknowledgement and the removal re-sends it, and central
//! answers a re-sent identical instance as stored without keeping a second copy.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

/// Magic at the start of every sealed file (format version 1).
const SEALED_MAGIC: &[u8; 6] = b"CLGWS1";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Sealed(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SpoolError {
    let what = what.into();
    move |source| SpoolError::Io { what, source }
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    pub dir: PathBuf,
}

/// What `state.json` holds (no PHI: times, counts and central's messages, which name no values).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub delivered_total: u64,
}

impl Spool {
    /// Opens (creating) the spool at `dir` and empties `tmp/` of partial writes.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        for sub in ["queue", "held", "failed", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(format!("cannot create {}", dir.join(sub).display())))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        if let Ok(rd) = std::fs::read_dir(dir.join("tmp")) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Spool { dir: dir.to_path_buf() })
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.dir.join("queue")
    }
    pub fn held_dir(&self) -> PathBuf {
        self.dir.join("held")
    }
    pub fn failed_dir(&self) -> PathBuf {
        self.dir.join("failed")
    }

    /// Writes `bytes` as `dir/name` durably: temporary file, fsync, rename, fsync of the directory.
    pub fn durable_write(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, SpoolError> {
        let tmp = self.dir.join("tmp").join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io("cannot create a spool file"))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io("cannot write a spool file"))?;
        drop(f);
        let dest = dir.join(name);
        std::fs::rename(&tmp, &dest).map_err(io("cannot move a spool file into place"))?;
        sync_dir(dir)?;
        Ok(dest)
    }

    /// Queues a de-identified instance under its de-identified SOP Instance UID.
    pub fn enqueue(&self, deid_uid: &str, bytes: &[u8]) -> Result<PathBuf, SpoolError> {
        self.durable_write(&self.queue_dir(), &format!("{deid_uid}.dcm"), bytes)
    }

    /// Queued instances, oldest first, with their sizes.
    pub fn queued(&self) -> Vec<(PathBuf, u64)> {
        let mut out: Vec<(std::time::SystemTime, PathBuf, u64)> = std::fs::read_dir(self.queue_dir())
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "dcm"))
                    .filter_map(|e| {
                        let m = e.metadata().ok()?;
                        Some((m.modified().unwrap_or(std::time::UNIX_EPOCH), e.path(), m.len()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.into_iter().map(|(_, p, n)| (p, n)).collect()
    }

    pub fn count(&self, dir: &Path, ext: &str) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| rd.flatten().filter(|e| e.path().extension().is_some_and(|x| x == ext)).count())
            .unwrap_or(0)
    }

    /// Central acknowledged `path`: journal it, then remove it from the queue.
    pub fn acknowledge(&self, paths: &[PathBuf]) -> Result<(), SpoolError> {
        if paths.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut lines = String::new();
        for p in paths {
            if let Some(stem) = p.file_stem() {
                lines.push_str(&format!("{} {now}\n", stem.to_string_lossy()));
            }
        }
        let mut j = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("journal.log"))
            .map_err(io("cannot open the journal"))?;
        j.write_all(lines.as_bytes()).and_then(|()| j.sync_data()).map_err(io("cannot write the journal"))?;
        for p in paths {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("cannot remove a delivered instance from the queue")(e)),
            }
        }
        sync_dir(&self.queue_dir())
    }

    /// Central refused `path` for good: it moves to `failed/` with the reason beside it.
    pub fn fail(&self, path: &Path, reason: &str) -> Result<(), SpoolError> {
        let Some(name) = path.file_name() else { return Ok(()) };
        let dest = self.failed_dir().join(name);
        self.durable_write(&self.failed_dir(), &format!("{}.reason", name.to_string_lossy()), reason.as_bytes())?;
        std::fs::rename(path, &dest).map_err(io("cannot move a refused instance to failed/"))?;
        sync_dir(&self.queue_dir())?;
        sync_dir(&self.failed_dir())
    }

    /// De-identified UIDs central has acknowledged (from the journal).
    pub fn delivered(&self) -> std::collections::HashSet<String> {
        std::fs::read_to_string(self.dir.join("journal.log"))
            .map(|t| t.lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    pub fn state(&self) -> State {
        std::fs::read(self.dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save_state(&self, state: &State) -> Result<(), SpoolError> {
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        self.durable_write(&self.dir.clone(), "state.json", &bytes).map(|_| ())
    }

    /// The site-local key (created on first use): seals held originals and the mapping file.
    pub fn local_key(&self) -> Result<LocalKey, SpoolError> {
        let (key, _) = crate::deid_cmd::load_or_create_key(&self.dir.join("local.key")).map_err(SpoolError::Sealed)?;
        LocalKey::new(&key)
    }
}

pub fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("cannot sync a spool directory"))?;
    }
    let _ = dir;
    Ok(())
}

/// ChaCha20-Poly1305 with the site-local key: what stays at the site is encrypted at rest.
pub struct LocalKey(LessSafeKey);

impl LocalKey {
    pub fn new(key: &[u8]) -> Result<LocalKey, SpoolError> {
        let k = key.get(..32).ok_or_else(|| SpoolError::Sealed("the local key must have 32 bytes".into()))?;
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, k)
            .map_err(|_| SpoolError::Sealed("the local key is not usable".into()))?;
        Ok(LocalKey(LessSafeKey::new(unbound)))
    }

    /// `magic || nonce || ciphertext || tag`, with a random nonce.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, SpoolError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut buf = plain.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(SEALED_MAGIC), &mut buf)
            .map_err(|_| SpoolError::Sealed("cannot encrypt".into()))?;
        let mut out = Vec::with_capacity(SEALED_MAGIC.len() + NONCE_LEN + buf.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SpoolError> {
        let bad = || SpoolError::Sealed("a sealed file is damaged or was sealed with another local.key".into());
        let rest = sealed.strip_prefix(SEALED_MAGIC.as_slice()).ok_or_else(bad)?;
        if rest.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = ct.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(SEALED_MAGIC), &mut buf).map_err(|_| bad())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_files_open_only_with_their_key_and_hide_the_plaintext() {
        let k = LocalKey::new(&[7u8; 32]).unwrap();
        let sealed = k.seal(b"PATIENT^SECRET 12345").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"SECRET"));
        assert_eq!(k.open(&sealed).unwrap(), b"PATIENT^SECRET 12345");
        let other = LocalKey::new(&[8u8; 32]).unwrap();
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k.open(&tampered).is_err());
    }

    #[test]
    fn queue_acknowledge_and_fail_are_durable_moves() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let p1 = s.enqueue("2.25.1", b"one").unwrap();
        let p2 = s.enqueue("2.25.2", b"two").unwrap();
        assert_eq!(s.queued().len(), 2);
        s.acknowledge(std::slice::from_ref(&p1)).unwrap();
        assert!(s.delivered().contains("2.25.1"));
        s.fail(&p2, "refused").unwrap();
        assert!(s.queued().is_empty());
        assert_eq!(s.count(&s.failed_dir(), "dcm"), 1);
    }
}
