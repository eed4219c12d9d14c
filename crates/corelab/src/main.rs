//! `corelab`: one binary for the server, the site gateway and the command-line tools.

use std::process::ExitCode;

use clap::Parser;
use corelab::cli::{Cli, Command, ConfigCommand};
use corelab::config::Config;
use corelab::{commands, demo, server, telemetry};
use corelab_app::Clock;
use corelab_app::auth::Bootstrap;

// De-identification and ingest allocate many small, short-lived values per instance (the parsed
// header); mimalloc serves those with less CPU than the system allocator (docs/performance.md). It is
// built with `no_thp`: with transparent huge pages each thread's heap made the server's RSS double.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.global.config.as_deref(), &cli.global.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corelab: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corelab: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command, config));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("corelab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Config { command: ConfigCommand::Show } => {
            print!("{}", config.redacted_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            telemetry::init(&config.log);
            let app = server::open_app(&config, Clock::system()).await?;
            let status = app.db().schema_status().await?;
            println!("database schema at version {} ({})", status.database_version, app.db().backend());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let mut config = config;
            config.demo.enabled |= args.demo;
            serve(config).await
        }
        Command::User { command } => {
            telemetry::init(&quiet(&config));
            commands::user(&config, command).await
        }
        Command::Audit { command } => {
            telemetry::init(&quiet(&config));
            commands::audit(&config, command).await
        }
        Command::Charter { command } => commands::charter(command),
        Command::Trial { command } => {
            telemetry::init(&quiet(&config));
            commands::trial(&config, command).await
        }
        Command::Recist { command } => commands::recist(command),
        Command::Backup { dest } => {
            telemetry::init(&quiet(&config));
            corelab::backup::backup(&config, &dest).await
        }
        Command::Restore { src } => {
            telemetry::init(&quiet(&config));
            corelab::backup::restore(&config, &src).await
        }
        Command::Verify => {
            telemetry::init(&quiet(&config));
            corelab::backup::verify(&config).await
        }
        Command::Export { command } => {
            telemetry::init(&quiet(&config));
            commands::export(&config, command).await
        }
        Command::Gateway(args) => {
            telemetry::init(&config.log);
            corelab::gateway::run(&config, args).await
        }
        Command::Upload(args) => {
            telemetry::init(&quiet(&config));
            corelab::gateway::upload::run(&config, args).await
        }
        Command::Package { trial, subject, out } => {
            telemetry::init(&quiet(&config));
            corelab::export_cmd::package(&config, &trial, subject.as_deref(), &out).await
        }
        Command::Report { name, trial, out } => {
            telemetry::init(&quiet(&config));
            corelab::export_cmd::report(&config, &name, &trial, &out).await
        }
        Command::Deid(args) => Ok(tokio::task::spawn_blocking(move || corelab::deid_cmd::run(&args)).await?),
    }
}

async fn serve(mut config: Config) -> anyhow::Result<ExitCode> {
    telemetry::init(&config.log);
    if config.demo.enabled {
        // Studies are judged complete sooner, so the demo set-up and uploads get QC at once.
        config.ingest.quiet_period_seconds = config.ingest.quiet_period_seconds.min(demo::QUIET_PERIOD_SECONDS);
    }
    let app = server::open_app(&config, Clock::system()).await?;
    let bootstrap = app.bootstrap_admin(config.admin.password.as_ref().map(|s| s.expose())).await?;
    let demo_report = if config.demo.enabled { Some(demo::ensure(&app).await?) } else { None };
    let running = server::start(&config, app.clone()).await?;
    println!("corelab {} is running", env!("CARGO_PKG_VERSION"));
    println!("  metadata: {} ({})", corelab_store::redact_url(&config.database_url()), app.db().backend());
    println!("  blobs:    {}", app.blobs().describe());
    println!("  HTTP:     http://{}  (health: /healthz, readiness: /readyz, metrics: /metrics)", running.http_addr);
    println!("  DICOM:    AE title {} on {}", config.dicom.ae_title.0, running.dicom_addr);
    match bootstrap {
        Bootstrap::Created { username, generated_password: Some(pw) } => {
            println!("  first start: created the system administrator '{username}' with the password");
            println!("      {pw}");
            println!("    shown only this once; you will be asked to change it at first login.");
        }
        Bootstrap::Created { username, generated_password: None } => {
            println!(
                "  first start: created the system administrator '{username}' with the password from CORELAB_ADMIN_PASSWORD"
            );
        }
        Bootstrap::Existing => {}
    }
    if let Some(report) = &demo_report {
        for line in demo::banner(report, &running.http_addr.to_string()) {
            println!("{line}");
        }
    }
    println!(
        "  log in:   curl -c cookies -H 'content-type: application/json' -d '{{\"username\":\"admin\",\"password\":\"...\"}}' http://{}/api/v1/auth/login",
        running.http_addr
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    app.db().close().await;
    Ok(ExitCode::SUCCESS)
}

/// Tools print their own results; only warnings and errors go to the log.
fn quiet(config: &Config) -> corelab::config::LogConfig {
    let mut l = config.log.clone();
    if l.level == "info" {
        l.level = "warn".into();
    }
    l
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
