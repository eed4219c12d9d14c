//! The `corelab` binary as a library: configuration, wiring and the command line, so that
//! integration tests start exactly what `corelab serve` starts.

pub mod backup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod deid_cmd;
pub mod demo;
pub mod export_cmd;
pub mod gateway;
pub mod server;
pub mod telemetry;
