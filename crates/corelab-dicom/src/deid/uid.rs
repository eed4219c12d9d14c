//! Deterministic UID remapping: `2.25.` + the first 128 bits of HMAC-SHA-256(trial secret, UID).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A UID as it came from the site (identifying: never log it).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginalUid(String);

/// A UID after de-identification (safe to store and show).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct DeidUid(String);

impl OriginalUid {
    /// Wraps a UID value, dropping the trailing NUL/space padding of the encoding.
    pub fn new(value: &str) -> OriginalUid {
        OriginalUid(trim_uid(value).to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// UIDs the standard defines (SOP classes, transfer syntaxes, well-known frames of reference,
    /// coding schemes) are never remapped.
    pub fn is_standard(&self) -> bool {
        self.0.starts_with("1.2.840.10008.")
    }
}

impl std::fmt::Debug for OriginalUid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginalUid(<redacted>)")
    }
}

impl DeidUid {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeidUid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn trim_uid(value: &str) -> &str {
    value.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

/// Maps original UIDs to de-identified ones with a per-trial secret.
#[derive(Clone)]
pub struct UidMapper {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for UidMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UidMapper(<secret>)")
    }
}

impl UidMapper {
    /// HMAC accepts keys of any length; an empty secret is refused by the context check.
    pub fn new(secret: &[u8]) -> UidMapper {
        let mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
            Ok(m) => m,
            // HMAC takes any key length, so this branch is unreachable; fall back to a zero key
            // rather than panicking (the context check refuses empty secrets anyway).
            Err(_) => <Hmac<Sha256> as KeyInit>::new(&Default::default()),
        };
        UidMapper { mac }
    }

    /// The de-identified UID for an original UID (same input, same secret: same output).
    pub fn map(&self, uid: &OriginalUid) -> DeidUid {
        let mut mac = self.mac.clone();
        mac.update(uid.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        DeidUid(format!("2.25.{}", u128::from_be_bytes(first)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_keyed_and_valid() {
        let a = UidMapper::new(b"trial secret A");
        let b = UidMapper::new(b"trial secret B");
        let u = OriginalUid::new("1.2.826.0.1.3680043.8.498.1234\0");
        assert_eq!(u.as_str(), "1.2.826.0.1.3680043.8.498.1234");
        let x = a.map(&u);
        assert_eq!(x, a.map(&OriginalUid::new("1.2.826.0.1.3680043.8.498.1234")));
        assert_ne!(x, b.map(&u));
        assert_ne!(x, a.map(&OriginalUid::new("1.2.826.0.1.3680043.8.498.1235")));
        let s = x.as_str();
        assert!(s.starts_with("2.25."));
        assert!(s.len() <= 64);
        let digits = &s[5..];
        assert!(digits.chars().all(|c| c.is_ascii_digit()));
        assert!(digits == "0" || !digits.starts_with('0'));
    }

    #[test]
    fn matches_an_independent_hmac_computation() {
        // HMAC-SHA-256(key="key", msg="The quick brown fox jumps over the lazy dog") is the RFC-style
        // test vector f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8.
        let m = UidMapper::new(b"key");
        let got = m.map(&OriginalUid::new("The quick brown fox jumps over the lazy dog"));
        let expected = u128::from_str_radix("f7bc83f430538424b13298e6aa6fb143", 16).unwrap();
        assert_eq!(got.as_str(), format!("2.25.{expected}"));
    }

    #[test]
    fn standard_uids_are_recognised_and_debug_redacts() {
        assert!(OriginalUid::new("1.2.840.10008.5.1.4.1.1.2").is_standard());
        assert!(!OriginalUid::new("1.2.840.113619.2.55").is_standard());
        assert_eq!(format!("{:?}", OriginalUid::new("1.2.3")), "OriginalUid(<redacted>)");
    }
}
