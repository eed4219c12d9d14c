//! DICOM rules of corelab on dicom-rs objects.
//!
//! Invariant: no IO here beyond reading and writing in-memory objects and byte streams the caller gives.

pub mod deid;
pub mod facts;
pub mod sr;
pub mod synth;
