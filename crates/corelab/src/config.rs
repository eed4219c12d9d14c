//! Configuration: built-in defaults, then a TOML file (`--config`), then `CORELAB_…` environment
//! variables, then command-line flags; later sources win. A wrong value stops corelab at start with
//! a message naming the key, the value, where it came from and what is accepted.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sections of the configuration; `CORELAB_<SECTION>_<KEY>` sets `<section>.<key>`.
const SECTIONS: &[&str] = &[
    "http", "dicom", "dicomweb", "database", "storage", "log", "auth", "admin", "jobs", "ingest", "qc", "fixity",
    "gateway", "demo",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded default keeps its SQLite database and blobs.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub dicom: DicomConfig,
    #[serde(default)]
    pub dicomweb: DicomwebConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub jobs: JobsConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub qc: QcConfig,
    #[serde(default)]
    pub fixity: FixityConfig,
    /// `corelab gateway` and `corelab upload` at a site (docs/gateway.md).
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// `corelab serve --demo` (docs/demo.md).
    #[serde(default)]
    pub demo: DemoConfig,
}

/// The demo trial with synthetic subjects and demo accounts (docs/demo.md). Never for real data.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Set up the demo trial and its accounts at start (same as `corelab serve --demo`).
    pub enabled: bool,
}

/// Settings of the site gateway and uploader; flags of `corelab gateway` override them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Base URL of the central corelab, e.g. https://corelab.example.
    pub central: Option<String>,
    /// API token of a site user of the site this gateway serves.
    pub token: Option<Secret>,
    /// Where the C-STORE SCP listens on the site network.
    pub listen: ListenAddr,
    /// The gateway's own AE title (the called AE title the PACS sends to).
    pub ae_title: AeTitle,
    /// Spool, held instances, keys and state (default: `<data_dir>/gateway`).
    pub spool_dir: Option<PathBuf>,
    /// The local status page, e.g. 127.0.0.1:8089 (off when unset).
    pub http: Option<ListenAddr>,
    /// Instances per STOW-RS request.
    pub batch_instances: usize,
    /// Bytes per STOW-RS request (at least one instance is always sent).
    pub batch_bytes: u64,
    /// First retry delay after a failed upload, in milliseconds; it doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// How often the gateway reports its health to central, in seconds.
    pub heartbeat_seconds: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            central: None,
            token: None,
            listen: ListenAddr(SocketAddr::from(([0, 0, 0, 0], 11112))),
            ae_title: AeTitle("CORELAB_GW".into()),
            spool_dir: None,
            http: None,
            batch_instances: 20,
            batch_bytes: 64 * 1024 * 1024,
            retry_initial_ms: 1000,
            retry_max_ms: 300_000,
            heartbeat_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FixityConfig {
    /// Re-hash every stored blob this often (0: only when `corelab verify` runs).
    pub interval_hours: u32,
}

impl Default for FixityConfig {
    fn default() -> Self {
        Self { interval_hours: 24 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Background job workers in this process (0: this process runs no jobs).
    pub workers: u32,
    /// How often an idle worker looks for due jobs.
    pub poll_interval_ms: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self { workers: 2, poll_interval_ms: 1000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A study is judged complete (and checked) after this many seconds without a new instance.
    pub quiet_period_seconds: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self { quiet_period_seconds: 60 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QcConfig {
    /// Open data queries get a reminder after this many days without one.
    pub query_reminder_days: u32,
    /// How often overdue visits are looked for.
    pub overdue_scan_minutes: u32,
}

impl Default for QcConfig {
    fn default() -> Self {
        Self { query_reminder_days: 7, overdue_scan_minutes: 15 }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./corelab-data")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: ListenAddr,
    /// Mark session cookies `Secure`; turn on when corelab is reached over HTTPS.
    pub secure_cookies: bool,
    /// The reader workstation's bundle (`scripts/build-viewer.sh` builds `web/viewer/dist`);
    /// unset: `web/viewer/dist` of the source tree corelab was built from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewer_dir: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: ListenAddr("127.0.0.1:8080".parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))),
            secure_cookies: false,
            viewer_dir: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomConfig {
    pub listen: ListenAddr,
    pub ae_title: AeTitle,
    pub max_pdu_length: u32,
    pub max_associations: u32,
    pub idle_timeout_seconds: u32,
    /// How often each process reloads AE title routing from the database (after a charter change).
    pub routing_refresh_seconds: u32,
}

impl Default for DicomConfig {
    fn default() -> Self {
        Self {
            listen: ListenAddr(SocketAddr::from(([127, 0, 0, 1], 11112))),
            ae_title: AeTitle("CORELAB".into()),
            max_pdu_length: 131_072,
            max_associations: 32,
            idle_timeout_seconds: 120,
            routing_refresh_seconds: 5,
        }
    }
}

/// DICOMweb (STOW-RS) limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomwebConfig {
    /// Largest STOW-RS part (one instance), in bytes.
    pub max_part_bytes: u64,
    /// Largest STOW-RS request body, in bytes.
    pub max_request_bytes: u64,
    /// Origins (scheme://host[:port]) of browser viewers allowed to GET the read side with an API
    /// token (CORS); empty: none. No wildcard.
    pub cors_origins: Vec<String>,
}

impl Default for DicomwebConfig {
    fn default() -> Self {
        Self {
            max_part_bytes: corelab_web::dicomweb::DEFAULT_MAX_PART_BYTES,
            max_request_bytes: corelab_web::dicomweb::DEFAULT_MAX_REQUEST_BYTES,
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`; default: SQLite in `data_dir`.
    pub url: Option<Secret>,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, max_connections: 8 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file://PATH` or `s3://BUCKET/PREFIX`; default: files under `data_dir/blobs`.
    pub url: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    /// Allow plain-HTTP S3 endpoints (MinIO or a test server on a trusted network).
    pub s3_allow_http: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,corelab::http=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub session_idle_minutes: u32,
    pub lockout_threshold: u32,
    pub lockout_minutes: u32,
    pub min_password_length: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { session_idle_minutes: 30, lockout_threshold: 5, lockout_minutes: 15, min_password_length: 12 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Password of the first administrator, used only when no account exists yet.
    pub password: Option<Secret>,
}

/// A host:port to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = scalar_string(d)?;
        s.parse::<SocketAddr>().map(ListenAddr).map_err(|_| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&s),
                &"an IP address and port such as 127.0.0.1:8080 or 0.0.0.0:11112",
            )
        })
    }
}

/// A DICOM AE title: 1 to 16 characters of the default repertoire, no backslash, not all spaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AeTitle(pub String);

impl<'de> Deserialize<'de> for AeTitle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = scalar_string(d)?;
        let ok = !s.trim().is_empty()
            && s.len() <= 16
            && s.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && c != '\\');
        if ok {
            Ok(AeTitle(s.trim().to_string()))
        } else {
            Err(serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&s),
                &"an AE title of 1 to 16 ASCII characters without backslash, e.g. CORELAB",
            ))
        }
    }
}

/// A value that must not be printed: passwords, keys, URLs with credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Serialising is only for overrides and display; the value travels through `expose`.
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_string(d).map(Secret)
    }
}

/// Accepts any scalar as text: an environment variable `12345` arrives as a number.
fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// Values given as command-line flags (the last and strongest source).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub http: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub dicom: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub database: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub storage: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub log: serde_json::Map<String, serde_json::Value>,
}

/// A configuration problem, printed as is to the operator.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads the configuration from every source, in order.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut fig = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!("--config {}: no such file", path.display())));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(env_provider()).merge(Serialized::globals(overrides));
        let config: Config = fig.extract().map_err(|e| ConfigError(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and combinations serde cannot express.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, accepted: &str| {
            Err(ConfigError(format!("key {key} has value {value}; accepted: {accepted}")))
        };
        if !(4096..=16 * 1024 * 1024).contains(&self.dicom.max_pdu_length) {
            return bad("dicom.max_pdu_length", self.dicom.max_pdu_length.to_string(), "4096 to 16777216 (bytes)");
        }
        if self.dicom.routing_refresh_seconds == 0 || self.dicom.routing_refresh_seconds > 3600 {
            return bad("dicom.routing_refresh_seconds", self.dicom.routing_refresh_seconds.to_string(), "1 to 3600");
        }
        if self.jobs.poll_interval_ms < 10 || self.jobs.poll_interval_ms > 600_000 {
            return bad("jobs.poll_interval_ms", self.jobs.poll_interval_ms.to_string(), "10 to 600000");
        }
        if self.ingest.quiet_period_seconds == 0 || self.ingest.quiet_period_seconds > 86_400 {
            return bad("ingest.quiet_period_seconds", self.ingest.quiet_period_seconds.to_string(), "1 to 86400");
        }
        if self.qc.query_reminder_days == 0 {
            return bad("qc.query_reminder_days", "0".into(), "1 or more");
        }
        if self.qc.overdue_scan_minutes == 0 || self.qc.overdue_scan_minutes > 24 * 60 {
            return bad("qc.overdue_scan_minutes", self.qc.overdue_scan_minutes.to_string(), "1 to 1440");
        }
        if self.dicom.max_associations == 0 {
            return bad("dicom.max_associations", "0".into(), "1 or more");
        }
        if self.auth.session_idle_minutes == 0 || self.auth.session_idle_minutes > 24 * 60 {
            return bad("auth.session_idle_minutes", self.auth.session_idle_minutes.to_string(), "1 to 1440");
        }
        if self.auth.lockout_threshold == 0 {
            return bad("auth.lockout_threshold", "0".into(), "1 or more failed logins");
        }
        if self.auth.min_password_length < 8 {
            return bad("auth.min_password_length", self.auth.min_password_length.to_string(), "8 or more");
        }
        if self.dicomweb.max_part_bytes == 0 || self.dicomweb.max_part_bytes > self.dicomweb.max_request_bytes {
            return bad(
                "dicomweb.max_part_bytes",
                self.dicomweb.max_part_bytes.to_string(),
                "1 or more, and not more than dicomweb.max_request_bytes",
            );
        }
        for origin in &self.dicomweb.cors_origins {
            let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(['/', '*', ' '])) {
                return bad(
                    "dicomweb.cors_origins",
                    origin.clone(),
                    "origins like https://viewer.example or http://localhost:3000 (no path, no wildcard)",
                );
            }
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "0".into(), "1 or more");
        }
        if let Some(url) = &self.database.url {
            let u = url.expose();
            if !(u.starts_with("sqlite:") || u.starts_with("postgres:") || u.starts_with("postgresql:")) {
                return bad(
                    "database.url",
                    format!("{:?}", corelab_store::redact_url(u)),
                    "sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                );
            }
        }
        if let Some(u) = &self.storage.url
            && !(u.starts_with("file://") || u.starts_with("s3://") || !u.contains("://"))
        {
            return bad("storage.url", format!("{u:?}"), "file://PATH, a plain path, or s3://BUCKET/PREFIX");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return bad(
                "log.level",
                format!("{:?}", self.log.level),
                "a level (error, warn, info, debug, trace) or a filter such as info,corelab=debug",
            );
        }
        Ok(())
    }

    /// The effective database URL.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(u) => u.expose().to_string(),
            None => format!("sqlite://{}", self.data_dir.join("corelab.db").display()),
        }
    }

    /// The effective blob store URL.
    pub fn storage_url(&self) -> String {
        match &self.storage.url {
            Some(u) => u.clone(),
            None => format!("file://{}", self.data_dir.join("blobs").display()),
        }
    }

    /// The configuration as TOML with secrets redacted and derived defaults filled in.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = Some(Secret(corelab_store::redact_url(&self.database_url())));
        shown.storage.url = Some(self.storage_url());
        if shown.storage.s3_secret_access_key.is_some() {
            shown.storage.s3_secret_access_key = Some(Secret("REDACTED".into()));
        }
        if shown.admin.password.is_some() {
            shown.admin.password = Some(Secret("REDACTED".into()));
        }
        if shown.gateway.token.is_some() {
            shown.gateway.token = Some(Secret("REDACTED".into()));
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

/// `CORELAB_HTTP_LISTEN` -> `http.listen`, `CORELAB_DATA_DIR` -> `data_dir`.
fn env_provider() -> Env {
    Env::prefixed("CORELAB_").map(|key| {
        let k = key.as_str().to_ascii_lowercase();
        for s in SECTIONS {
            if let Some(rest) = k.strip_prefix(&format!("{s}_")) {
                return format!("{s}.{rest}").into();
            }
        }
        k.into()
    })
}

fn describe_figment_error(e: figment::Error) -> String {
    use figment::error::Kind;
    let key = e.path.join(".");
    let source = e
        .metadata
        .as_ref()
        .map(|m| {
            if m.name.contains("environment") {
                format!(" (from environment variable CORELAB_{})", e.path.join("_").to_ascii_uppercase())
            } else if m.name.contains("flag") || m.name.contains("Serialized") {
                " (from a command-line flag)".to_string()
            } else {
                match &m.source {
                    Some(src) => format!(" (from {src})"),
                    None => format!(" (from {})", m.name),
                }
            }
        })
        .unwrap_or_default();
    match &e.kind {
        Kind::UnknownField(field, expected) => {
            let full = if key.is_empty() { field.clone() } else { format!("{key}.{field}") };
            format!("unknown key {full}{source}; accepted keys here: {}", expected.join(", "))
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("key {key} has value {actual}{source}; accepted: {expected}")
        }
        Kind::UnknownVariant(actual, expected) => {
            format!("key {key} has value {actual:?}{source}; accepted: {}", expected.join(", "))
        }
        _ => format!("key {key}{source}: {}", e.kind),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err, clippy::type_complexity)]
mod tests {
    use super::*;

    fn load_with(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", toml)?;
            for (k, v) in env {
                jail.set_env(k, v);
            }
            result = Some(Config::load(Some(Path::new("c.toml")), &Overrides::default()));
            Ok(())
        });
        result.unwrap()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = load_with("", &[]).unwrap();
        assert_eq!(c.http.listen.0.to_string(), "127.0.0.1:8080");
        assert_eq!(c.dicom.listen.0.port(), 11112);
        assert_eq!(c.database_url(), "sqlite://./corelab-data/corelab.db");
        assert_eq!(c.storage_url(), "file://./corelab-data/blobs");
    }

    #[test]
    fn later_sources_win_file_then_env_then_flags() {
        let toml = "[http]\nlisten = \"127.0.0.1:9000\"\n[dicom]\nae_title = \"FROMFILE\"\n";
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", toml)?;
            jail.set_env("CORELAB_HTTP_LISTEN", "127.0.0.1:9001");
            jail.set_env("CORELAB_DICOM_MAX_PDU_LENGTH", "65536");
            let mut o = Overrides::default();
            o.http.insert("listen".into(), "127.0.0.1:9002".into());
            result = Some(Config::load(Some(Path::new("c.toml")), &o));
            Ok(())
        });
        let c = result.unwrap().unwrap();
        assert_eq!(c.http.listen.0.to_string(), "127.0.0.1:9002");
        assert_eq!(c.dicom.ae_title.0, "FROMFILE");
        assert_eq!(c.dicom.max_pdu_length, 65536);
    }

    #[test]
    fn wrong_values_name_key_value_and_what_is_accepted() {
        let cases: &[(&str, &[(&str, &str)], &[&str])] = &[
            ("[http]\nlisten = \"nonsense\"\n", &[], &["http.listen", "nonsense", "127.0.0.1:8080"]),
            ("", &[("CORELAB_HTTP_LISTEN", "localhost")], &["http.listen", "localhost", "CORELAB_HTTP_LISTEN"]),
            ("[dicom]\nmax_pdu_length = 12\n", &[], &["dicom.max_pdu_length", "12", "4096"]),
            ("[dicom]\nae_title = \"A\\\\B\"\n", &[], &["dicom.ae_title", "16 ASCII"]),
            ("[log]\nformat = \"xml\"\n", &[], &["log.format", "xml", "text, json"]),
            ("[database]\nurl = \"mysql://x\"\n", &[], &["database.url", "mysql://x", "postgres://"]),
            ("[http]\nlisten_on = \"x\"\n", &[], &["unknown key http.listen_on", "listen"]),
            ("", &[("CORELAB_HTTP_PORTT", "1")], &["unknown key http.portt"]),
            ("[auth]\nsession_idle_minutes = 0\n", &[], &["auth.session_idle_minutes", "1 to 1440"]),
        ];
        for (toml, env, needles) in cases {
            let msg = load_with(toml, env).unwrap_err().to_string();
            for n in *needles {
                assert!(msg.contains(n), "message {msg:?} should contain {n:?}");
            }
        }
    }

    #[test]
    fn secrets_are_redacted_in_show() {
        let c = load_with(
            "[database]\nurl = \"postgres://u:hunter2@db/x\"\n[admin]\npassword = \"Secret-Pass-123\"\n[storage]\ns3_secret_access_key = \"AKIAxyz\"\n",
            &[],
        )
        .unwrap();
        let shown = c.redacted_toml();
        for secret in ["hunter2", "Secret-Pass-123", "AKIAxyz"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("postgres://u:REDACTED@db/x"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
