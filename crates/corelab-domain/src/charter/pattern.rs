//! Subject ID patterns (`{site}-{nnn}`) and header globs (`*T1*`).

use std::fmt;

use serde::{Serialize, Serializer};

/// A compiled subject ID pattern.
///
/// Syntax: literal characters (letters, digits, `-`, `_`, `.`), `{site}` for the site ID (at most
/// once) and `{n...}` for exactly that many digits (`{nnn}` = 3 digits, 1 to 12 n's). At least one
/// digit placeholder is required, so subject IDs differ. Matching is exact and case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectIdPattern {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Site,
    Digits(usize),
}

impl SubjectIdPattern {
    /// Compile a pattern; the error says what is wrong.
    pub fn parse(source: &str) -> Result<SubjectIdPattern, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.chars();
        let mut has_site = false;
        let mut has_digits = false;
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err("a '{' is not closed by '}'".into());
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    if name == "site" {
                        if has_site {
                            return Err("{site} may appear only once".into());
                        }
                        has_site = true;
                        parts.push(Part::Site);
                    } else if !name.is_empty() && name.chars().all(|c| c == 'n') {
                        if name.len() > 12 {
                            return Err(format!("{{{name}}} asks for more than 12 digits"));
                        }
                        has_digits = true;
                        parts.push(Part::Digits(name.len()));
                    } else {
                        return Err(format!(
                            "unknown placeholder {{{name}}}; use {{site}} or {{n}}, {{nn}}, {{nnn}}, ..."
                        ));
                    }
                }
                '}' => return Err("a '}' has no matching '{'".into()),
                c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => literal.push(c),
                c => {
                    return Err(format!(
                        "{c:?} is not allowed; literal parts may hold letters, digits, '-', '_' and '.'"
                    ));
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if !has_digits {
            return Err(
                "the pattern has no digit placeholder such as {nnn}, so every subject of a site would get the same ID"
                    .into(),
            );
        }
        Ok(SubjectIdPattern { source: source.to_string(), parts })
    }

    /// Stand-in used while reading a charter whose pattern is broken; such a charter is never
    /// returned, so this value never reaches callers.
    pub(crate) fn placeholder() -> SubjectIdPattern {
        SubjectIdPattern { source: "{n}".into(), parts: vec![Part::Digits(1)] }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern mentions `{site}`.
    pub fn uses_site(&self) -> bool {
        self.parts.contains(&Part::Site)
    }

    /// Length in characters of the IDs this pattern produces for `site_id`.
    pub fn id_len(&self, site_id: &str) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.chars().count(),
                Part::Site => site_id.chars().count(),
                Part::Digits(n) => *n,
            })
            .sum()
    }

    /// Whether `subject_id` is an ID of site `site_id` under this pattern.
    pub fn matches(&self, site_id: &str, subject_id: &str) -> bool {
        let mut rest = subject_id;
        for part in &self.parts {
            match part {
                Part::Literal(l) => match rest.strip_prefix(l.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                },
                Part::Site => match rest.strip_prefix(site_id) {
                    Some(r) => rest = r,
                    None => return false,
                },
                Part::Digits(n) => {
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    if digits < *n {
                        return false;
                    }
                    rest = &rest[*n..];
                }
            }
        }
        rest.is_empty()
    }

    /// The ID of subject number `number` at `site_id`, or None when the number does not fit the
    /// digit placeholders. With several digit placeholders the number fills the last one and the
    /// others are zero.
    pub fn format(&self, site_id: &str, number: u64) -> Option<String> {
        let last_digits = self.parts.iter().rposition(|p| matches!(p, Part::Digits(_)))?;
        let mut out = String::new();
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Site => out.push_str(site_id),
                Part::Digits(n) if i == last_digits => {
                    let s = format!("{number:0n$}", n = *n);
                    if s.len() != *n {
                        return None;
                    }
                    out.push_str(&s);
                }
                Part::Digits(n) => out.push_str(&"0".repeat(*n)),
            }
        }
        Some(out)
    }
}

impl fmt::Display for SubjectIdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for SubjectIdPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// Whether `pattern` and `subject_id` match for `site_id`; an invalid pattern matches nothing.
pub fn subject_id_matches(pattern: &str, site_id: &str, subject_id: &str) -> bool {
    SubjectIdPattern::parse(pattern).is_ok_and(|p| p.matches(site_id, subject_id))
}

/// Case-insensitive glob match: `*` matches any run of characters (also none), `?` exactly one.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    // Iterative matching with single-star backtracking: linear memory, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Why a header glob is unusable; None when it is fine.
pub fn glob_error(pattern: &str) -> Option<String> {
    if pattern.trim().is_empty() {
        return Some("pattern is empty".into());
    }
    if pattern.chars().count() > 64 {
        return Some("pattern is longer than 64 characters, the longest value it could match".into());
    }
    if pattern.chars().any(|c| c.is_control() || c == '\\') {
        return Some("pattern contains a backslash or control character, which header values never hold".into());
    }
    if pattern.chars().all(|c| c == '*') {
        return Some("pattern matches everything, so it cannot tell series apart".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_patterns_compile_and_match() {
        let p = SubjectIdPattern::parse("{site}-{nnn}").unwrap();
        assert!(p.matches("101", "101-001"));
        assert!(p.matches("FR01", "FR01-123"));
        assert!(!p.matches("101", "102-001"), "other site");
        assert!(!p.matches("101", "101-01"), "too few digits");
        assert!(!p.matches("101", "101-0001"), "too many digits");
        assert!(!p.matches("101", "101_001"), "wrong separator");
        assert!(!p.matches("101", "101-00a"), "letter for digit");
        assert!(!p.matches("FR01", "fr01-001"), "case-sensitive");
        assert_eq!(p.id_len("101"), 7);
        assert_eq!(p.format("101", 7).as_deref(), Some("101-007"));
        assert_eq!(p.format("101", 1000), None);

        let q = SubjectIdPattern::parse("S{nn}{site}X{nnnn}").unwrap();
        assert!(q.matches("AB", "S12ABX0042"));
        assert!(!q.matches("AB", "S1ABX0042"));
        assert!(subject_id_matches("{site}-{nnn}", "7", "7-123"));
        assert!(!subject_id_matches("{site}-{xyz}", "7", "7-123"));
    }

    #[test]
    fn bad_subject_patterns_say_why() {
        for (bad, fragment) in [
            ("{site}-", "no digit placeholder"),
            ("{site}-{nnn", "not closed"),
            ("{site}-nnn}", "no matching"),
            ("{site}-{id}", "unknown placeholder {id}"),
            ("{site}{site}-{nn}", "only once"),
            ("{site} {nnn}", "' ' is not allowed"),
            ("{nnnnnnnnnnnnn}", "more than 12"),
        ] {
            let err = SubjectIdPattern::parse(bad).err().unwrap_or_default();
            assert!(err.contains(fragment), "{bad}: {err}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_matches("*T1*", "Ax 3D T1 MPRAGE"));
        assert!(glob_matches("*t1*mprage*", "AX 3D T1 MPRAGE"));
        assert!(glob_matches("AX?T2", "AX_T2"));
        assert!(!glob_matches("AX?T2", "AXT2"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*PORTAL*", "CAP PORTAL VENOUS 5mm"));
        assert!(!glob_matches("*PORTAL*", "CAP ARTERIAL"));
        assert!(!glob_matches("T1", "T1 POST"));
        assert!(glob_matches("a*b*c", "aXbYbc"));
        assert!(!glob_matches("a*b*c", "aXbYbd"));
        assert_eq!(glob_error("*FLAIR*"), None);
        assert!(glob_error("**").is_some());
        assert!(glob_error("").is_some());
    }
}
