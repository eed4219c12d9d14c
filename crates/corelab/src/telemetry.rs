//! Structured logs with `tracing`: human-readable by default, JSON lines with `log.format = "json"`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Logs go to stderr; stdout is for what the operator asked for.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
    // sqlx logs every statement at info; that is noise for operators.
    let filter = filter.add_directive(
        "sqlx=warn".parse().unwrap_or_else(|_| tracing_subscriber::filter::Directive::from(tracing::Level::WARN)),
    );
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
