//! corelab integration tests: the real server on port 0 with a fresh database and blob store,
//! driven over HTTP and DICOM. Storage tests run on every backend `support::backends()` returns:
//! SQLite + local files always, PostgreSQL + S3 when TEST_PG_URL and TEST_S3_ENDPOINT are set
//! (required when CI=true).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod backup;
mod charter;
mod config_cli;
mod deid;
mod demo;
mod dicomweb_read;
mod foundation;
mod gateway;
mod identity;
mod ingest;
mod ingest_crash;
mod locks;
mod processes;
mod qc_flow;
mod reading_pages;
mod reads;
mod reads_lvef_ms;
mod reports;
mod sdtm;
mod store;
mod stow;
mod support;
mod ui;
mod ui_scenario;
mod workstation;
mod world;
