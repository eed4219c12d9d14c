//! Problems found in a charter, located by line, column and key path.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The charter cannot be used until this is fixed.
    Error,
    /// Legal, but probably not what the author meant; the charter is still accepted.
    Warning,
}

/// What kind of problem it is, for callers that branch on it (and for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemCode {
    /// Not valid TOML.
    Syntax,
    /// A value of the wrong TOML type.
    WrongType,
    UnknownKey,
    MissingKey,
    /// Right type, wrong value (not one of the allowed words, out of range, bad format, empty).
    InvalidValue,
    /// A range whose `min` is above its `max`.
    MinAboveMax,
    /// A visit window that closes before it opens, or a repeat that ends before it starts.
    WindowEndsBeforeStart,
    /// A reference to an ID that is not defined (imaging requirement, series).
    UnknownReference,
    DuplicateId,
    /// The same calling AE title at two sites (or twice in a list).
    DuplicateAeTitle,
    /// A subject ID pattern or a header pattern that cannot be used.
    BadPattern,
    /// Settings that contradict each other or have no effect.
    Inconsistent,
    /// Read criteria that do not fit the trial's therapeutic area.
    CriteriaMismatch,
}

/// One problem in a charter. `Display` gives `LINE:COL: key: message (hint: ...)`; the CLI
/// prefixes the file name. `Serialize` gives the same fields as JSON for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub code: ProblemCode,
    /// 1-based line of the offending key (or of its table when the key is missing).
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Key path, e.g. `visits[2].window.plus_days` (array indexes are 0-based). Empty for
    /// syntax errors.
    pub key: String,
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl Problem {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{} (hint: {})", self.message, self.hint)
    }
}

/// A problem before it is located in the source text.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub severity: Severity,
    pub code: ProblemCode,
    pub path: String,
    pub message: String,
    pub hint: String,
    /// Byte offset in the source, when the reader knows it.
    pub offset: Option<usize>,
    /// For unknown references: the top-level collection the ID should come from, so references
    /// are not reported when that collection itself could not be read.
    pub refers_to: Option<&'static str>,
}

impl Finding {
    pub fn error(code: ProblemCode, path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            code,
            path: path.into(),
            message: message.into(),
            hint: String::new(),
            offset: None,
            refers_to: None,
        }
    }

    pub fn warning(code: ProblemCode, path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding { severity: Severity::Warning, ..Finding::error(code, path, message) }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    pub fn at(mut self, offset: usize) -> Self {
        self.offset = Some(offset);
        self
    }

    pub fn refers_to(mut self, collection: &'static str) -> Self {
        self.refers_to = Some(collection);
        self
    }
}

/// Byte offsets to 1-based line and character column.
pub(crate) struct LineIndex<'s> {
    text: &'s str,
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub fn new(text: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    pub fn locate(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count());
        (to_u32(line), to_u32(column + 1))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Where each key path was found: the byte offset of its key (or array item).
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    offsets: BTreeMap<String, usize>,
}

impl SpanIndex {
    pub fn insert(&mut self, path: &str, offset: usize) {
        self.offsets.entry(path.to_string()).or_insert(offset);
    }

    /// The offset of `path`, or of its nearest ancestor that was written in the file.
    pub fn locate(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(&o) = self.offsets.get(p) {
                return o;
            }
            match parent_path(p) {
                Some(parent) => p = parent,
                None => return 0,
            }
        }
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> None.
pub(crate) fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    match path.rfind(['.', '[']) {
        Some(i) => Some(&path[..i]),
        None => Some(""),
    }
}

/// Whether `path` is `ancestor` or lies under it (segment-wise).
pub(crate) fn is_under(path: &str, ancestor: &str) -> bool {
    if ancestor.is_empty() {
        return true;
    }
    path == ancestor || (path.starts_with(ancestor) && matches!(path.as_bytes().get(ancestor.len()), Some(b'.' | b'[')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_lines_and_characters() {
        let text = "a = 1\nbé = 2\n\nc = 3";
        let idx = LineIndex::new(text);
        assert_eq!(idx.locate(0), (1, 1));
        assert_eq!(idx.locate(4), (1, 5));
        assert_eq!(idx.locate(6), (2, 1));
        // "bé " is 4 bytes but 3 characters.
        assert_eq!(idx.locate(10), (2, 4));
        assert_eq!(idx.locate(14), (3, 1));
        assert_eq!(idx.locate(15), (4, 1));
    }

    #[test]
    fn paths_walk_up_by_segment() {
        assert_eq!(parent_path("visits[2].window.plus_days"), Some("visits[2].window"));
        assert_eq!(parent_path("visits[2].window"), Some("visits[2]"));
        assert_eq!(parent_path("visits[2]"), Some("visits"));
        assert_eq!(parent_path("visits"), Some(""));
        assert_eq!(parent_path(""), None);
        assert!(is_under("visits[2].window", "visits[2]"));
        assert!(is_under("visits[2]", "visits"));
        assert!(!is_under("visits_extra", "visits"));
        assert!(!is_under("visits[20]", "visits[2]"));
    }

    #[test]
    fn span_index_falls_back_to_the_nearest_written_ancestor() {
        let mut spans = SpanIndex::default();
        spans.insert("reads", 40);
        spans.insert("reads.criteria", 50);
        assert_eq!(spans.locate("reads.criteria"), 50);
        assert_eq!(spans.locate("reads.sd_min_days"), 40);
        assert_eq!(spans.locate("visits[0]"), 0);
    }

    #[test]
    fn display_has_the_cli_shape() {
        let p = Problem {
            severity: Severity::Error,
            code: ProblemCode::WindowEndsBeforeStart,
            line: 12,
            column: 3,
            key: "visits[2].window.plus_days".into(),
            message: "window ends before it starts".into(),
            hint: "make plus_days >= -minus_days".into(),
        };
        assert_eq!(
            p.to_string(),
            "12:3: visits[2].window.plus_days: window ends before it starts (hint: make plus_days >= -minus_days)"
        );
        let w = Problem { severity: Severity::Warning, key: String::new(), ..p };
        assert_eq!(w.to_string(), "12:3: warning: window ends before it starts (hint: make plus_days >= -minus_days)");
    }
}
