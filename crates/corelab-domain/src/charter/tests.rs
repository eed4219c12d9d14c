//! Tests over whole charters: the examples, broken copies, one row per kind of problem, the
//! schema, the calendar and the diff.

use super::*;

pub(crate) const ONCOLOGY: &str = include_str!("../../../../charters/oncology-ct-recist.toml");
pub(crate) const CARDIOLOGY: &str = include_str!("../../../../charters/cardiology-lvef.toml");
pub(crate) const NEUROLOGY: &str = include_str!("../../../../charters/neurology-ms-mri.toml");

#[test]
fn examples_have_no_problems() {
    for (name, text) in [("oncology", ONCOLOGY), ("cardiology", CARDIOLOGY), ("neurology", NEUROLOGY)] {
        let check = check_charter(text);
        let shown: Vec<String> = check.problems.iter().map(|p| format!("{name}:{p}")).collect();
        assert!(shown.is_empty(), "{}", shown.join("\n"));
        assert!(check.charter.is_some());
    }
}
