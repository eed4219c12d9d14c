//! Reader agreement metrics (domain.md section 3): Cohen's kappa on paired categorical outcomes,
//! adjudication rate (AR), adjudicator agreement rate (AAR) and the reader disagreement index (RDI).
//!
//! Counts are kept as integers; each ratio is formed once, from exact integer numerator and
//! denominator.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A ratio with its counts; `value` is null when the denominator is 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub numerator: u64,
    pub denominator: u64,
    pub value: Option<f64>,
}

impl Rate {
    pub fn new(numerator: u64, denominator: u64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let value = (denominator > 0).then(|| numerator as f64 / denominator as f64);
        Rate { numerator, denominator, value }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AgreementError {
    #[error("no paired ratings")]
    Empty,
    #[error("record {index}: the two readers must be different people")]
    SameReader { index: usize },
    #[error("record {index}: the adjudicator chose {chosen}, who is not one of the two readers")]
    ChoiceNotAReader { index: usize, chosen: String },
    #[error("record {index}: a choice is recorded but the subject was not adjudicated")]
    ChoiceWithoutAdjudication { index: usize },
}

/// Cohen's kappa with its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kappa {
    pub n: u64,
    /// Pairs on which the two ratings agree.
    pub agreements: u64,
    /// Observed agreement po = agreements / n.
    pub observed_agreement: f64,
    /// Chance agreement pe = sum over categories of (row total x column total) / n^2.
    pub expected_agreement: f64,
    /// (po - pe) / (1 - pe). Null when pe = 1: both raters used one and the same category for
    /// every pair, so agreement beyond chance is undefined (po is then 1).
    pub kappa: Option<f64>,
}

/// Cohen's kappa on paired categorical ratings (rater 1, rater 2), e.g. timepoint responses, BOR
/// or PD yes/no.
pub fn cohen_kappa<T: Ord>(pairs: &[(T, T)]) -> Result<Kappa, AgreementError> {
    if pairs.is_empty() {
        return Err(AgreementError::Empty);
    }
    let n = pairs.len() as u128;
    let mut rows: BTreeMap<&T, u128> = BTreeMap::new();
    let mut cols: BTreeMap<&T, u128> = BTreeMap::new();
    let mut agree: u128 = 0;
    for (a, b) in pairs {
        *rows.entry(a).or_default() += 1;
        *cols.entry(b).or_default() += 1;
        if a == b {
            agree += 1;
        }
    }
    let chance: u128 = rows.iter().map(|(k, r)| r * cols.get(k).copied().unwrap_or(0)).sum();
    let n2 = n * n;
    #[allow(clippy::cast_precision_loss)]
    let ratio = |num: i128, den: i128| num as f64 / den as f64;
    let as_i = |v: u128| i128::try_from(v).unwrap_or(i128::MAX);
    let kappa = (chance != n2).then(|| ratio(as_i(n * agree) - as_i(chance), as_i(n2) - as_i(chance)));
    Ok(Kappa {
        n: u64::try_from(n).unwrap_or(u64::MAX),
        agreements: u64::try_from(agree).unwrap_or(u64::MAX),
        observed_agreement: ratio(as_i(agree), as_i(n)),
        expected_agreement: ratio(as_i(chance), as_i(n2)),
        kappa,
    })
}

/// One double-read subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubleRead {
    pub reader_1: String,
    pub reader_2: String,
    pub adjudicated: bool,
    /// The reader whose assessment the adjudicator accepted; None while pending.
    #[serde(default)]
    pub adjudicator_chose: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReaderMetrics {
    pub reader: String,
    /// AR: adjudicated subjects / subjects this reader double-read.
    pub adjudication_rate: Rate,
    /// AAR: adjudications this reader won / decided adjudications involving this reader.
    pub adjudicator_agreement_rate: Rate,
    /// RDI: subjects where the adjudicator chose the other reader / subjects this reader read.
    /// `value` is a fraction; x 100 for the usual percentage.
    pub reader_disagreement_index: Rate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadMetrics {
    /// Study AR: adjudicated subjects / double-read subjects.
    pub adjudication_rate: Rate,
    /// Adjudicated subjects still without a decision (not in AAR or RDI).
    pub pending_adjudications: u64,
    pub per_reader: Vec<ReaderMetrics>,
}

pub fn read_metrics(records: &[DoubleRead]) -> Result<ReadMetrics, AgreementError> {
    #[derive(Default)]
    struct Tally {
        read: u64,
        adjudicated: u64,
        decided: u64,
        won: u64,
    }
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut adjudicated = 0_u64;
    let mut pending = 0_u64;
    for (i, r) in records.iter().enumerate() {
        let index = i + 1;
        if r.reader_1 == r.reader_2 {
            return Err(AgreementError::SameReader { index });
        }
        if let Some(chosen) = &r.adjudicator_chose {
            if !r.adjudicated {
                return Err(AgreementError::ChoiceWithoutAdjudication { index });
            }
            if chosen != &r.reader_1 && chosen != &r.reader_2 {
                return Err(AgreementError::ChoiceNotAReader { index, chosen: chosen.clone() });
            }
        }
        if r.adjudicated {
            adjudicated += 1;
            if r.adjudicator_chose.is_none() {
                pending += 1;
            }
        }
        let readers: BTreeSet<&str> = [r.reader_1.as_str(), r.reader_2.as_str()].into();
        for reader in readers {
            let t = tallies.entry(reader).or_default();
            t.read += 1;
            if r.adjudicated {
                t.adjudicated += 1;
                if let Some(chosen) = &r.adjudicator_chose {
                    t.decided += 1;
                    if chosen == reader {
                        t.won += 1;
                    }
                }
            }
        }
    }
    Ok(ReadMetrics {
        adjudication_rate: Rate::new(adjudicated, records.len() as u64),
        pending_adjudications: pending,
        per_reader: tallies
            .into_iter()
            .map(|(reader, t)| ReaderMetrics {
                reader: reader.to_string(),
                adjudication_rate: Rate::new(t.adjudicated, t.read),
                adjudicator_agreement_rate: Rate::new(t.won, t.decided),
                reader_disagreement_index: Rate::new(t.decided - t.won, t.read),
            })
            .collect(),
    })
}
