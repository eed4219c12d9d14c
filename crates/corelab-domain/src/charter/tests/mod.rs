//! Tests over whole charters: the examples, broken copies, one row per kind of problem, the JSON
//! schema, the visit calendar and the diff.

mod calendar;
mod diff;
mod examples;
mod schema;
mod validation;

pub(crate) const ONCOLOGY: &str = include_str!("../../../../../charters/oncology-ct-recist.toml");
pub(crate) const CARDIOLOGY: &str = include_str!("../../../../../charters/cardiology-lvef.toml");
pub(crate) const NEUROLOGY: &str = include_str!("../../../../../charters/neurology-ms-mri.toml");

pub(crate) const EXAMPLES: [(&str, &str); 3] =
    [("oncology", ONCOLOGY), ("cardiology", CARDIOLOGY), ("neurology", NEUROLOGY)];

/// Replace `old` (which must occur exactly once) by `new`.
pub(crate) fn replace_once(text: &str, old: &str, new: &str) -> String {
    assert_eq!(text.matches(old).count(), 1, "{old:?} must occur exactly once");
    text.replacen(old, new, 1)
}

/// 1-based line of the only occurrence of `needle`.
pub(crate) fn line_of(text: &str, needle: &str) -> u32 {
    assert_eq!(text.matches(needle).count(), 1, "{needle:?} must occur exactly once");
    let at = text.find(needle).unwrap_or_default();
    u32::try_from(text[..at].matches('\n').count() + 1).unwrap_or(0)
}

pub(crate) fn parse_ok(text: &str) -> super::Charter {
    match super::parse_charter(text) {
        Ok(c) => c,
        Err(problems) => panic!("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
    }
}
