//! `corelab gateway`: a site's DICOM gateway. A C-STORE SCP on the site network that
//! de-identifies on the site machine with the trial's profile (fetched from central with the
//! site's token), spools each instance durably, and uploads to central with STOW-RS in batches
//! with retries and exponential backoff. `corelab upload` shares the pipeline. See docs/gateway.md.

pub mod central;
pub mod scp;
pub mod site;
pub mod spool;
mod status;
pub mod upload;
mod zipread;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::Config;
use central::Central;
use site::{Pipeline, SiteProfile};
use spool::Spool;

/// Arguments of `corelab gateway`; they override `[gateway]` of the configuration file.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    /// Base URL of central corelab (gateway.central).
    #[arg(long, value_name = "URL")]
    pub central: Option<String>,
    /// API token of a site user (gateway.token, or CORELAB_GATEWAY_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Where the C-STORE SCP listens (gateway.listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// The gateway's AE title (gateway.ae_title).
    #[arg(long, value_name = "AE")]
    pub ae_title: Option<String>,
    /// Spool directory (gateway.spool_dir; default <data_dir>/gateway).
    #[arg(long, value_name = "DIR", global = true)]
    pub spool: Option<PathBuf>,
    /// The local status page, e.g. 127.0.0.1:8089 (gateway.http).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum GatewayCommand {
    /// Print queue depth, last upload, last error and instances waiting for assignment.
    Status,
}

/// Everything the gateway's tasks share.
pub struct Shared {
    pub pipeline: Arc<Pipeline>,
    pub central: Central,
    pub wake: tokio::sync::Notify,
    pub state: Mutex<spool::State>,
}

/// The gateway's effective settings.
pub struct Settings {
    pub central: Option<String>,
    pub token: Option<String>,
    pub listen: std::net::SocketAddr,
    pub ae_title: String,
    pub spool: PathBuf,
    pub http: Option<std::net::SocketAddr>,
    pub batch_instances: usize,
    pub batch_bytes: u64,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub heartbeat: Duration,
}

impl Settings {
    pub fn new(config: &Config, args: &GatewayArgs) -> Settings {
        let g = &config.gateway;
        Settings {
            central: args.central.clone().or_else(|| g.central.clone()),
            token: args.token.clone().or_else(|| g.token.as_ref().map(|t| t.expose().to_string())),
            listen: args.listen.unwrap_or(g.listen.0),
            ae_title: args.ae_title.clone().unwrap_or_else(|| g.ae_title.0.clone()),
            spool: args
                .spool
                .clone()
                .or_else(|| g.spool_dir.clone())
                .unwrap_or_else(|| config.data_dir.join("gateway")),
            http: args.http.or(g.http.map(|h| h.0)),
            batch_instances: g.batch_instances.max(1),
            batch_bytes: g.batch_bytes.max(1),
            retry_initial: Duration::from_millis(g.retry_initial_ms.max(10)),
            retry_max: Duration::from_millis(g.retry_max_ms.max(g.retry_initial_ms).max(10)),
            heartbeat: Duration::from_secs(g.heartbeat_seconds.max(1)),
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Runs `corelab gateway` (or `corelab gateway status`).
pub async fn run(config: &Config, args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::new(config, &args);
    if let Some(GatewayCommand::Status) = args.command {
        return status::print(&settings);
    }
    let (Some(central_url), Some(token)) = (settings.central.clone(), settings.token.clone()) else {
        eprintln!("corelab gateway: give --central URL and --token TOKEN (or [gateway] central/token in --config)");
        return Ok(ExitCode::from(2));
    };
    let central = match Central::new(&central_url, &token) {
        Ok(c) => c,
        Err(m) => {
            eprintln!("corelab gateway: {m}");
            return Ok(ExitCode::from(2));
        }
    };
    let spool = Spool::open(&settings.spool)?;
    // The settings come from central; while central is down at start, the last copy is used.
    let gw_config = loop {
        match settings_from_central(&central, &spool).await {
            Ok((c, fresh)) => {
                if !fresh {
                    tracing::warn!("central is unreachable; using the settings it sent last time");
                }
                break c;
            }
            Err(e) if e.transient() => {
                tracing::warn!(error = %e, "central is unreachable and no earlier settings are kept; retrying");
                tokio::time::sleep(settings.retry_initial).await;
            }
            Err(e) => {
                eprintln!("corelab gateway: central refused the gateway settings: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    };
    let profile = SiteProfile::new(gw_config).map_err(anyhow::Error::msg)?;
    let allowed = Arc::new(profile.config.site_ae_titles.clone());
    let site_id = profile.config.site_id.clone();
    let pipeline = Arc::new(Pipeline::new(spool.clone(), profile)?);
    // Instances a crash left held although the mapping already assigns them.
    {
        let p = pipeline.clone();
        match tokio::task::spawn_blocking(move || p.release_held()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(released = n, "held instances the mapping assigns were queued"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not release held instances"),
            Err(e) => tracing::warn!(error = %e, "could not release held instances"),
        }
    }
    let shared =
        Arc::new(Shared { pipeline, central, wake: tokio::sync::Notify::new(), state: Mutex::new(spool.state()) });
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let dicom_addr = listener.local_addr()?;
    let access = scp::SiteAccess { ae_title: settings.ae_title.clone(), allowed: allowed.clone() };
    let mut status_addr = None;
    if let Some(addr) = settings.http {
        let l = tokio::net::TcpListener::bind(addr).await?;
        status_addr = Some(l.local_addr()?);
        let s = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, status::router(s)).await {
                tracing::error!(error = %e, "the status page stopped");
            }
        });
    }
    println!("corelab gateway {} is running", env!("CARGO_PKG_VERSION"));
    println!("  site:     {site_id} (accepting calling AE titles {})", allowed.join(", "));
    println!("  DICOM:    AE title {} on {dicom_addr}", settings.ae_title);
    println!("  spool:    {}", settings.spool.display());
    if let Some(a) = status_addr {
        println!("  status:   http://{a}/");
    }
    println!("  central:  {central_url}");
    {
        let s = shared.clone();
        let (bi, bb, ri, rm) =
            (settings.batch_instances, settings.batch_bytes, settings.retry_initial, settings.retry_max);
        tokio::spawn(async move { uploader(s, bi, bb, ri, rm).await });
    }
    {
        let (s, every) = (shared.clone(), settings.heartbeat);
        tokio::spawn(async move { heartbeats(s, every).await });
    }
    tokio::select! {
        r = scp::serve(listener, access, shared.clone()) => r?,
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
    }
    tracing::info!("gateway stopping; the queue stays in the spool");
    Ok(ExitCode::SUCCESS)
}

/// The site's settings from central, kept sealed in the spool; when central is unreachable, the
/// copy from last time (`false`: not fresh). Errors other than unreachable are not masked.
pub async fn settings_from_central(
    central: &Central,
    spool: &Spool,
) -> Result<(corelab_app::gateway::GatewayConfig, bool), central::CentralError> {
    let key = spool.local_key().map_err(|e| central::CentralError::Unreachable(e.to_string()))?;
    match central.config().await {
        Ok(c) => {
            let plain = serde_json::to_vec(&c).unwrap_or_default();
            if let Ok(sealed) = key.seal(&plain)
                && let Err(e) = spool.durable_write(&spool.dir.clone(), "central-config.enc", &sealed)
            {
                tracing::warn!(error = %e, "could not keep a copy of the site's settings");
            }
            Ok((c, true))
        }
        Err(e) if e.transient() => std::fs::read(spool.dir.join("central-config.enc"))
            .ok()
            .and_then(|s| key.open(&s).ok())
            .and_then(|p| serde_json::from_slice(&p).ok())
            .map(|c| (c, false))
            .ok_or(e),
        Err(e) => Err(e),
    }
}

/// Reports queue depth, held and refused counts and the last success/error to central.
async fn heartbeats(shared: Arc<Shared>, every: Duration) {
    loop {
        let spool = &shared.pipeline.spool;
        let state = shared.state.lock().map(|s| s.clone()).unwrap_or_default();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let beat = corelab_app::gateway::Heartbeat {
            version: env!("CARGO_PKG_VERSION").to_string(),
            queue_depth: count(spool.queued().len()),
            waiting: count(spool.count(&spool.held_dir(), "held")),
            failed: count(spool.count(&spool.failed_dir(), "dcm")),
            last_success: state.last_success,
            last_error: state.last_error,
        };
        if let Err(e) = shared.central.heartbeat(&beat).await {
            tracing::debug!(error = %e, "heartbeat not delivered");
        }
        tokio::time::sleep(every).await;
    }
}

async fn terminate() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut t) = signal(SignalKind::terminate()) {
            t.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

/// Drains the queue whenever something arrives (and every few seconds), backing off
/// exponentially while central is unreachable or failing.
async fn uploader(shared: Arc<Shared>, batch_instances: usize, batch_bytes: u64, initial: Duration, max: Duration) {
    let mut delay = initial;
    loop {
        let pass =
            central::drain_once(&shared.central, &shared.pipeline.spool, batch_instances, batch_bytes, |_, _| {}).await;
        let mut state = match shared.state.lock() {
            Ok(s) => s.clone(),
            Err(_) => spool::State::default(),
        };
        if pass.delivered > 0 {
            state.last_success = Some(now());
            state.delivered_total += pass.delivered as u64;
            tracing::info!(delivered = pass.delivered, bytes = pass.delivered_bytes, "uploaded to central");
        }
        let failed = pass.error.is_some();
        if let Some(e) = &pass.error {
            state.last_error = Some(e.to_string());
            state.last_error_at = Some(now());
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "upload failed; will retry");
        }
        if pass.delivered > 0 || failed {
            if let Err(e) = shared.pipeline.spool.save_state(&state) {
                tracing::warn!(error = %e, "could not save the gateway state");
            }
            if let Ok(mut s) = shared.state.lock() {
                *s = state;
            }
        }
        if failed {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max);
        } else {
            delay = initial;
            tokio::select! {
                _ = shared.wake.notified() => {
                    // Let a burst of instances gather into one batch.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }
}
