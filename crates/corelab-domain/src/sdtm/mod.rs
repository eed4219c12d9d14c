//! CDISC SDTM tumour datasets (TU, TR, RS) from blinded independent central review reads
//! (domain.md section 7), and the writers that hand them over: CSV (RFC 4180), SAS XPORT v5
//! (`.xpt`, IBM floating point) and a define-style variable listing. Pure: reads and visit facts
//! come in as values; bytes and text come out. docs/exports.md describes every variable.

mod csv;
pub mod dataset;
pub mod define;
mod derive;
mod variables;
pub mod xpt;

pub use csv::write_csv;
pub use dataset::{Cell, Dataset, VarType, Variable};
pub use define::{define_csv, define_xml};
pub use derive::{
    Acceptance, AcceptedReads, EVAL, Evaluator, Mode, Reader, ReaderRead, SdtmDatasets, SdtmError, Study, SubjectReads,
    Visit, derive,
};
pub use variables::{RS_VARIABLES, TR_VARIABLES, TU_VARIABLES};
pub use xpt::{XptError, sas_datetime, write_xpt};

#[cfg(test)]
mod tests;
