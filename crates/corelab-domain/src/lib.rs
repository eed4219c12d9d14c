//! Pure domain rules of corelab.
//!
//! Invariant: nothing in this crate does IO, reads the clock, or draws randomness. Time, ids and
//! random values come in as arguments, so every rule can be tested with plain data tables.

pub mod access;
pub mod charter;
pub mod deid_profile;
pub mod qc;
pub mod reports;
pub mod response;
pub mod sdtm;
