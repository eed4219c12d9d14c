//! Wiring: opens the database and the blob store, and starts the HTTP and DIMSE services.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use corelab_app::{App, AppSettings, AuthSettings, Clock};
use corelab_store::{BlobStore, Db, DbOptions, S3Settings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;

/// Opens the stores named by `config`, applies migrations, and returns the use-case layer.
pub async fn open_app(config: &Config, clock: Clock) -> anyhow::Result<App> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", config.data_dir.display()))?;
    let db = Db::connect(
        &config.database_url(),
        &DbOptions { max_connections: config.database.max_connections, ..DbOptions::default() },
    )
    .await
    .with_context(|| format!("database.url: cannot open {}", corelab_store::redact_url(&config.database_url())))?;
    db.migrate().await?;
    let s3 = S3Settings {
        endpoint: config.storage.s3_endpoint.clone(),
        region: config.storage.s3_region.clone(),
        access_key_id: config.storage.s3_access_key_id.clone(),
        secret_access_key: config.storage.s3_secret_access_key.as_ref().map(|s| s.expose().to_string()),
        allow_http: config.storage.s3_allow_http,
    };
    let blobs = BlobStore::open(&config.storage_url(), &s3, &config.data_dir.join("staging"))?;
    // Staged files older than a day belong to a process that died mid-write; they were never
    // acknowledged, so removing them loses nothing.
    let removed = blobs.clean_staging(Duration::from_secs(24 * 3600)).await?;
    if removed > 0 {
        tracing::info!(removed, "removed stale staged files left by an earlier crash");
    }
    let settings = AppSettings {
        auth: AuthSettings {
            session_idle_timeout: chrono::Duration::minutes(i64::from(config.auth.session_idle_minutes)),
            lockout_threshold: i64::from(config.auth.lockout_threshold),
            lockout_duration: chrono::Duration::minutes(i64::from(config.auth.lockout_minutes)),
            min_password_length: config.auth.min_password_length as usize,
        },
        ingest_quiet_period_seconds: i64::from(config.ingest.quiet_period_seconds),
        query_reminder_days: i64::from(config.qc.query_reminder_days),
        overdue_scan_interval_seconds: i64::from(config.qc.overdue_scan_minutes) * 60,
        fixity_interval_hours: i64::from(config.fixity.interval_hours),
        ..AppSettings::default()
    };
    let app = App::new(db, blobs, clock, settings);
    // Rows that committed while their blob was still being flushed, left by a process that stopped
    // in between: keep those whose blob is intact, withdraw the others (never acknowledged).
    let settled = app.settle_unflushed_blobs().await.context("settling blobs left unflushed by an earlier stop")?;
    if settled != Default::default() {
        tracing::info!(
            flushed = settled.flushed,
            withdrawn = settled.withdrawn,
            "settled blobs left unflushed by an earlier stop"
        );
    }
    Ok(app)
}

/// The running services.
pub struct Running {
    pub http_addr: SocketAddr,
    pub dicom_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish, and waits for the services to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds the listeners and starts serving.
pub async fn start(config: &Config, app: App) -> anyhow::Result<Running> {
    let http = TcpListener::bind(config.http.listen.0)
        .await
        .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen.0))?;
    let dicom = TcpListener::bind(config.dicom.listen.0)
        .await
        .with_context(|| format!("dicom.listen: cannot listen on {}", config.dicom.listen.0))?;
    let http_addr = http.local_addr()?;
    let dicom_addr = dicom.local_addr()?;
    let (tx, rx) = watch::channel(false);

    let web = corelab_web::WebSettings {
        secure_cookies: config.http.secure_cookies,
        stow: corelab_web::dicomweb::StowLimits {
            max_part_bytes: config.dicomweb.max_part_bytes,
            max_request_bytes: config.dicomweb.max_request_bytes,
        },
        cors_origins: config.dicomweb.cors_origins.clone(),
        viewer_dir: config.http.viewer_dir.clone(),
    };
    let router = corelab_web::router(app.clone(), web);
    let mut http_rx = rx.clone();
    let http_task = tokio::spawn(async move {
        let serve = axum::serve(http, router).with_graceful_shutdown(async move {
            let _ = http_rx.wait_for(|stop| *stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    let dimse_settings = corelab_dimse::DimseSettings {
        ae_title: config.dicom.ae_title.0.clone(),
        max_pdu_length: config.dicom.max_pdu_length,
        idle_timeout: Duration::from_secs(u64::from(config.dicom.idle_timeout_seconds)),
        max_associations: config.dicom.max_associations as usize,
        routing_refresh: Duration::from_secs(u64::from(config.dicom.routing_refresh_seconds)),
    };
    let mut tasks = vec![http_task];
    // Background jobs: any process may run any job; leases in the job table keep them apart.
    if config.jobs.workers > 0 {
        if let Err(e) = app.schedule_overdue_scan().await {
            tracing::warn!(error = %e, "could not schedule the overdue scan");
        }
        if let Err(e) = app.schedule_fixity().await {
            tracing::warn!(error = %e, "could not schedule the fixity check");
        }
        for n in 0..config.jobs.workers {
            let worker = format!("{}-{}-{n}", hostname(), std::process::id());
            let (app, mut stop) = (app.clone(), rx.clone());
            let poll = Duration::from_millis(u64::from(config.jobs.poll_interval_ms));
            tasks.push(tokio::spawn(async move {
                loop {
                    if let Err(e) = app.run_due_jobs(&worker).await {
                        tracing::warn!(error = %e, "job worker error");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }));
        }
    }
    let dimse_task = tokio::spawn(async move {
        if let Err(e) = corelab_dimse::serve(dicom, dimse_settings, app, rx).await {
            tracing::error!(error = %e, "DICOM server failed");
        }
    });
    tasks.push(dimse_task);
    Ok(Running { http_addr, dicom_addr, shutdown: tx, tasks })
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "corelab".into())
}
