//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(name = "corelab", version, about = "corelab: an open-source imaging core lab platform")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings that every command accepts; they override the file and the environment.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// A TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded default (SQLite database and blobs).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address (http.listen).
    #[arg(long, global = true, value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// DICOM listen address (dicom.listen).
    #[arg(long, global = true, value_name = "ADDR")]
    pub dicom_listen: Option<String>,
    /// Metadata database URL (database.url).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Blob store URL (storage.url).
    #[arg(long, global = true, value_name = "URL")]
    pub storage_url: Option<String>,
    /// Log format: text or json (log.format).
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log level or filter (log.level).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

impl GlobalArgs {
    pub fn overrides(&self) -> Overrides {
        let mut o = Overrides { data_dir: self.data_dir.clone(), ..Overrides::default() };
        let put = |map: &mut serde_json::Map<String, serde_json::Value>, key: &str, v: &Option<String>| {
            if let Some(v) = v {
                map.insert(key.to_string(), serde_json::Value::String(v.clone()));
            }
        };
        put(&mut o.http, "listen", &self.http_listen);
        put(&mut o.dicom, "listen", &self.dicom_listen);
        put(&mut o.database, "url", &self.database_url);
        put(&mut o.storage, "url", &self.storage_url);
        put(&mut o.log, "format", &self.log_format);
        put(&mut o.log, "level", &self.log_level);
        o
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run corelab: HTTP (API, web pages) and DICOM services.
    Serve(ServeArgs),
    /// Apply database migrations and print the schema version.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage accounts (as the server's operator).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Check the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Validate imaging charter files.
    Charter {
        #[command(subcommand)]
        command: CharterCommand,
    },
    /// Create and amend trials from charter files.
    Trial {
        #[command(subcommand)]
        command: TrialCommand,
    },
    /// Evaluate response criteria offline.
    Recist {
        #[command(subcommand)]
        command: RecistCommand,
    },
    /// De-identify a DICOM file or folder offline with a trial's charter (no server needed).
    Deid(crate::deid_cmd::DeidArgs),
    /// Run a site gateway: a C-STORE SCP that de-identifies at the site, spools and uploads to central.
    Gateway(crate::gateway::GatewayArgs),
    /// De-identify a folder at the site and upload it to central (resumable).
    Upload(crate::gateway::upload::UploadArgs),
    /// Write a consistent backup (database + every blob + SHA-256 manifest) while corelab serves.
    Backup { dest: PathBuf },
    /// Rebuild an instance from a backup into the configured (empty) database and blob store.
    Restore { src: PathBuf },
    /// Re-hash every stored blob against the index; exit 1 if any is missing or altered.
    Verify,
    /// Write a trial's (or one subject's) regulatory package: a ZIP of de-identified images,
    /// reads, QC, signatures and the audit trail with a SHA-256 manifest (docs/reports.md).
    Package {
        /// Protocol ID or trial id.
        #[arg(long)]
        trial: String,
        /// Only this subject (subject ID).
        #[arg(long)]
        subject: Option<String>,
        /// The ZIP file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a report (site-performance, reader-performance, response, timeline) as a standalone
    /// HTML file or, for a .pdf name, a PDF printed by headless Chromium.
    Report {
        name: String,
        /// Protocol ID or trial id.
        #[arg(long)]
        trial: String,
        /// FILE.html or FILE.pdf
        #[arg(long)]
        out: PathBuf,
    },
    /// Export a trial's data (SDTM datasets) into a folder.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
}

/// Flags of `corelab serve`.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Start with a demo trial to look around in: the example oncology charter, demo accounts
    /// for every role (one shared password, printed at start), and synthetic subjects whose CT
    /// images corelab makes itself, spread over the visit states. Set up once per database;
    /// restarting with --demo adds nothing. Never use it with real data (docs/demo.md).
    /// Same as demo.enabled = true or CORELAB_DEMO_ENABLED=true.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write SDTM TU, TR and RS (.xpt and .csv) and the define listing (define.xml, define.csv)
    /// of a trial's accepted reads into a new or empty folder; audited.
    Sdtm {
        /// The trial's protocol ID (or its id).
        #[arg(long)]
        trial: String,
        /// The folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Every reader's locked reads and the adjudicator's records, accepted ones flagged.
        #[arg(long)]
        all_reads: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; prints a generated one-time password unless --password-stdin is given.
    Add {
        username: String,
        /// Printed name, shown on e-signatures.
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Make the account a system administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Disable an account and end its sessions.
    Disable {
        username: String,
        #[arg(long)]
        reason: String,
    },
    /// Enable a disabled account.
    Enable {
        username: String,
        #[arg(long)]
        reason: String,
    },
    /// Set a generated password that must be changed at next login.
    ResetPassword {
        username: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-hash the whole audit trail and name the first record that was altered or removed.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum CharterCommand {
    /// Print every problem of a charter file with its line, key and a fix hint.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum TrialCommand {
    /// Create a trial from a charter file.
    Create {
        #[arg(long)]
        charter: PathBuf,
    },
    /// Amend a trial's charter: a new version in force from now on.
    Amend {
        /// The trial's protocol ID.
        #[arg(long)]
        trial: String,
        #[arg(long)]
        charter: PathBuf,
        #[arg(long)]
        reason: String,
    },
    /// Show what changed between two charter versions.
    Diff {
        #[arg(long)]
        trial: String,
        #[arg(long)]
        from: i64,
        #[arg(long)]
        to: i64,
    },
    /// List trials.
    List,
}

#[derive(Debug, Subcommand)]
pub enum RecistCommand {
    /// Evaluate a case (or an array of cases) and print the results as JSON.
    Evaluate { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets redacted).
    Show,
}
