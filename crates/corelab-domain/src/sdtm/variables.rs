//! The variables of TU, TR and RS as corelab writes them (SDTMIG 3.x oncology domains; domain.md
//! section 7), in dataset order.

use super::dataset::{VarType, Variable};

const fn c(name: &'static str, label: &'static str, origin: &'static str) -> Variable {
    Variable { name, label, kind: VarType::Char, origin }
}

const fn n(name: &'static str, label: &'static str, origin: &'static str) -> Variable {
    Variable { name, label, kind: VarType::Num, origin }
}

pub const TU_VARIABLES: &[Variable] = &[
    c("STUDYID", "Study Identifier", "Assigned"),
    c("DOMAIN", "Domain Abbreviation", "Assigned"),
    c("USUBJID", "Unique Subject Identifier", "Assigned"),
    n("TUSEQ", "Sequence Number", "Derived"),
    c("TUGRPID", "Group ID", "Derived"),
    c("TUREFID", "Reference ID", "Collected"),
    c("TULNKID", "Link ID", "Collected"),
    c("TUTESTCD", "Tumor/Lesion ID Short Name", "Assigned"),
    c("TUTEST", "Tumor/Lesion ID Test Name", "Assigned"),
    c("TUORRES", "Tumor/Lesion ID Result", "Collected"),
    c("TUSTRESC", "Tumor/Lesion ID Result Std. Format", "Derived"),
    c("TULOC", "Location of the Tumor/Lesion", "Collected"),
    c("TUMETHOD", "Method of Identification", "Derived"),
    c("TUEVAL", "Evaluator", "Assigned"),
    c("TUEVALID", "Evaluator Identifier", "Assigned"),
    c("TUACPTFL", "Accepted Record Flag", "Derived"),
    n("VISITNUM", "Visit Number", "Assigned"),
    c("VISIT", "Visit Name", "Assigned"),
    c("TUDTC", "Date/Time of Tumor/Lesion Identification", "Derived"),
    n("TUDY", "Study Day of Tumor/Lesion Identification", "Derived"),
];

pub const TR_VARIABLES: &[Variable] = &[
    c("STUDYID", "Study Identifier", "Assigned"),
    c("DOMAIN", "Domain Abbreviation", "Assigned"),
    c("USUBJID", "Unique Subject Identifier", "Assigned"),
    n("TRSEQ", "Sequence Number", "Derived"),
    c("TRGRPID", "Group ID", "Derived"),
    c("TRREFID", "Reference ID", "Collected"),
    c("TRLNKID", "Link ID", "Collected"),
    c("TRLNKGRP", "Link Group ID", "Derived"),
    c("TRTESTCD", "Tumor/Lesion Assessment Short Name", "Assigned"),
    c("TRTEST", "Tumor/Lesion Assessment Test Name", "Assigned"),
    c("TRORRES", "Result or Finding in Original Units", "Collected"),
    c("TRORRESU", "Original Units", "Assigned"),
    c("TRSTRESC", "Character Result/Finding in Std Format", "Derived"),
    n("TRSTRESN", "Numeric Result/Finding in Standard Units", "Derived"),
    c("TRSTRESU", "Standard Units", "Assigned"),
    c("TRSTAT", "Completion Status", "Collected"),
    c("TRREASND", "Reason Not Done", "Derived"),
    c("TRMETHOD", "Method Used to Identify the Tumor/Lesion", "Derived"),
    c("TREVAL", "Evaluator", "Assigned"),
    c("TREVALID", "Evaluator Identifier", "Assigned"),
    c("TRACPTFL", "Accepted Record Flag", "Derived"),
    n("VISITNUM", "Visit Number", "Assigned"),
    c("VISIT", "Visit Name", "Assigned"),
    c("TRDTC", "Date/Time of Tumor/Lesion Measurement", "Derived"),
    n("TRDY", "Study Day of Tumor/Lesion Measurement", "Derived"),
];

pub const RS_VARIABLES: &[Variable] = &[
    c("STUDYID", "Study Identifier", "Assigned"),
    c("DOMAIN", "Domain Abbreviation", "Assigned"),
    c("USUBJID", "Unique Subject Identifier", "Assigned"),
    n("RSSEQ", "Sequence Number", "Derived"),
    c("RSLNKGRP", "Link Group ID", "Derived"),
    c("RSTESTCD", "Assessment Short Name", "Assigned"),
    c("RSTEST", "Assessment Name", "Assigned"),
    c("RSCAT", "Category for Assessment", "Assigned"),
    c("RSORRES", "Result or Finding in Original Units", "Derived"),
    c("RSSTRESC", "Character Result/Finding in Std Format", "Derived"),
    c("RSSTAT", "Completion Status", "Derived"),
    c("RSREASND", "Reason Not Done", "Derived"),
    c("RSEVAL", "Evaluator", "Assigned"),
    c("RSEVALID", "Evaluator Identifier", "Assigned"),
    c("RSACPTFL", "Accepted Record Flag", "Derived"),
    n("VISITNUM", "Visit Number", "Assigned"),
    c("VISIT", "Visit Name", "Assigned"),
    c("RSDTC", "Date/Time of Assessment", "Derived"),
    n("RSDY", "Study Day of Assessment", "Derived"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_fit_xport_v5() {
        for v in TU_VARIABLES.iter().chain(TR_VARIABLES).chain(RS_VARIABLES) {
            assert!(v.name.len() <= 8 && v.name.is_ascii(), "{}", v.name);
            assert!(v.label.len() <= 40 && v.label.is_ascii(), "{}: {}", v.name, v.label);
        }
    }
}
