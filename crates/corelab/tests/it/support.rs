//! Test harness: `spawn_app(backend)` starts corelab in-process on port 0; `ServeProcess` runs the
//! real binary for crash and multi-process tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corelab::config::{Config, ListenAddr, Overrides, Secret};
use corelab::server::{self, Running};
use corelab_app::{App, Clock};
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "Test-Sysop-Pass-42";

/// Where a test's metadata and blobs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SqliteLocal,
    PgS3,
}

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The backends to run storage tests on. With CI=true a missing PostgreSQL or S3 fails the run.
pub fn backends() -> Vec<Backend> {
    let pg = std::env::var("TEST_PG_URL").is_ok();
    let s3 = std::env::var("TEST_S3_ENDPOINT").is_ok();
    if pg && s3 {
        vec![Backend::SqliteLocal, Backend::PgS3]
    } else {
        assert!(
            !ci(),
            "CI=true but TEST_PG_URL and TEST_S3_ENDPOINT are not both set: the PostgreSQL + S3 variant must run"
        );
        eprintln!("note: TEST_PG_URL/TEST_S3_ENDPOINT not set, running on SQLite + local files only");
        vec![Backend::SqliteLocal]
    }
}

/// True when PostgreSQL + S3 are available; with CI=true their absence is a failure.
pub fn pg_s3_available() -> bool {
    backends().contains(&Backend::PgS3)
}

/// A fresh database and blob location for one test.
pub struct Env {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pub storage_url: String,
}

impl Env {
    pub async fn new(backend: Backend) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::SqliteLocal => Env {
                backend,
                database_url: format!("sqlite://{}", dir.path().join("corelab.db").display()),
                storage_url: format!("file://{}", dir.path().join("blobs").display()),
                dir,
            },
            Backend::PgS3 => {
                let admin_url = std::env::var("TEST_PG_URL").unwrap();
                let name = format!("corelab_t_{id}");
                let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
                pool.close().await;
                let mut url = url_with_db(&admin_url, &name);
                if url.is_empty() {
                    url = admin_url;
                }
                let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "corelab-test".into());
                Env { backend, database_url: url, storage_url: format!("s3://{bucket}/t-{id}"), dir }
            }
        }
    }

    /// A configuration for this environment with both listeners on port 0.
    pub fn config(&self) -> Config {
        let mut c = Config::load(None, &Overrides::default()).unwrap();
        c.data_dir = self.dir.path().to_path_buf();
        c.http.listen = ListenAddr("127.0.0.1:0".parse().unwrap());
        c.dicom.listen = ListenAddr("127.0.0.1:0".parse().unwrap());
        c.database.url = Some(Secret(self.database_url.clone()));
        c.storage.url = Some(self.storage_url.clone());
        c.admin.password = Some(Secret(ADMIN_PASSWORD.into()));
        c.dicom.routing_refresh_seconds = 1;
        c.ingest.quiet_period_seconds = 1;
        c.jobs.poll_interval_ms = 200;
        if self.backend == Backend::PgS3 {
            c.storage.s3_endpoint = std::env::var("TEST_S3_ENDPOINT").ok();
            c.storage.s3_region = Some("us-east-1".into());
            c.storage.s3_access_key_id = Some("test".into());
            c.storage.s3_secret_access_key = Some(Secret("test".into()));
            c.storage.s3_allow_http = true;
        }
        c
    }

    /// Environment variables that make `corelab serve` use this environment.
    pub fn process_env(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("CORELAB_DATA_DIR".to_string(), self.dir.path().display().to_string()),
            ("CORELAB_DATABASE_URL".into(), self.database_url.clone()),
            ("CORELAB_STORAGE_URL".into(), self.storage_url.clone()),
            ("CORELAB_HTTP_LISTEN".into(), "127.0.0.1:0".into()),
            ("CORELAB_DICOM_LISTEN".into(), "127.0.0.1:0".into()),
            ("CORELAB_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ];
        if self.backend == Backend::PgS3 {
            v.push(("CORELAB_STORAGE_S3_ENDPOINT".into(), std::env::var("TEST_S3_ENDPOINT").unwrap()));
            v.push(("CORELAB_STORAGE_S3_ACCESS_KEY_ID".into(), "test".into()));
            v.push(("CORELAB_STORAGE_S3_SECRET_ACCESS_KEY".into(), "test".into()));
            v.push(("CORELAB_STORAGE_S3_ALLOW_HTTP".into(), "true".into()));
        }
        v
    }
}

fn url_with_db(admin_url: &str, db: &str) -> String {
    match url::Url::parse(admin_url) {
        Ok(mut u) => {
            u.set_path(&format!("/{db}"));
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

/// corelab running in this test process.
pub struct TestApp {
    pub env: Env,
    pub app: App,
    pub addr: SocketAddr,
    pub dicom_addr: SocketAddr,
    pub client: reqwest::Client,
    running: Option<Running>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let env = Env::new(backend).await;
    spawn_app_in(env).await
}

pub async fn spawn_app_in(env: Env) -> TestApp {
    spawn_app_configured(env, |_| {}).await
}

/// Like [`spawn_app_in`], with the configuration adjusted by `adjust` first.
pub async fn spawn_app_configured(env: Env, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = env.config();
    adjust(&mut config);
    let app = server::open_app(&config, Clock::system()).await.unwrap();
    app.bootstrap_admin(Some(ADMIN_PASSWORD)).await.unwrap();
    let running = server::start(&config, app.clone()).await.unwrap();
    TestApp {
        addr: running.http_addr,
        dicom_addr: running.dicom_addr,
        app,
        env,
        client: client(),
        running: Some(running),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(60)).build().unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.unwrap()
    }

    /// Logs this test's client in as the first administrator.
    pub async fn login_admin(&self) {
        let r = self.post_json("/api/v1/auth/login", json!({"username": "admin", "password": ADMIN_PASSWORD})).await;
        assert_eq!(r.status(), 200, "admin login failed: {}", r.text().await.unwrap());
    }

    pub async fn stop(self) {
        self.stop_keeping_env().await;
    }

    /// Stops corelab and hands back its database and blobs, to start it again on them.
    pub async fn stop_keeping_env(mut self) -> Env {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        self.app.db().close().await;
        self.env
    }
}

/// `corelab serve` as a child process.
pub struct ServeProcess {
    pub child: Child,
    pub http: SocketAddr,
    /// The DIMSE listener, from the banner's `DICOM: AE title X on ADDR` line.
    pub dicom: Option<SocketAddr>,
    pub stdout: Vec<String>,
}

pub fn corelab_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_corelab"))
}

impl ServeProcess {
    /// Starts `corelab serve` with `envs` and waits until it prints its HTTP address.
    pub fn start(envs: &[(String, String)], cwd: &Path) -> ServeProcess {
        ServeProcess::start_with(&["serve"], envs, cwd)
    }

    /// Starts corelab with `args` (e.g. `serve --demo`) and waits for the banner.
    pub fn start_with(args: &[&str], envs: &[(String, String)], cwd: &Path) -> ServeProcess {
        let mut child = Command::new(corelab_bin())
            .args(args)
            .current_dir(cwd)
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut http = None;
        let mut dicom = None;
        // The banner ends with the "log in:" line.
        loop {
            assert!(Instant::now() < deadline, "corelab serve did not start: {seen:?}");
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait().unwrap();
                panic!("corelab serve exited ({status}) before listening: {seen:?}");
            };
            seen.push(line.clone());
            if let Some(rest) = line.trim().strip_prefix("HTTP:") {
                let addr = rest.trim().trim_start_matches("http://").split_whitespace().next().unwrap();
                http = Some(addr.parse::<SocketAddr>().unwrap());
            }
            if line.trim().starts_with("DICOM:") {
                dicom = line.rsplit(' ').next().and_then(|a| a.parse::<SocketAddr>().ok());
            }
            if line.trim().starts_with("log in:") {
                break;
            }
        }
        let http = http.expect("the banner names the HTTP address");
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServeProcess { child, http, dicom, stdout: seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        let _ = Command::new("kill").arg("-9").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `/readyz` until it answers 200.
pub async fn wait_ready(base: &str) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = c.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{base} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The path of a dcmtk tool (pynetdicom installs look-alikes on PATH; dcmtk's live in /usr/bin),
/// or `None` after a notice; with CI=true a missing tool fails the test.
pub fn dcmtk(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin").join(name);
    if path.is_file() {
        return Some(path);
    }
    assert!(!ci(), "CI=true but dcmtk's {name} is not installed (apt-get install dcmtk)");
    eprintln!("note: dcmtk's {name} is not installed; skipping the part of this test that needs it");
    None
}

/// The repository's root (web/, charters/, target/ are under it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where browser tests put their screenshots.
pub fn e2e_artifacts() -> PathBuf {
    repo_root().join("target/ui-artifacts")
}

/// Whether a browser test (web/e2e) can run: node, Debian's chromium, web/e2e's npm packages and
/// the `extra` (present?, what to install) it names. When something is missing it says so and
/// the test is skipped, except under CI=true, where it fails.
pub fn e2e_ready(test: &str, extra: &[(bool, &str)]) -> bool {
    let e2e = repo_root().join("web/e2e");
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [
        (!node_ok).then_some("node"),
        (!Path::new(&chromium()).exists()).then_some("chromium (apt-get install chromium)"),
        (!e2e.join("node_modules/playwright-core").is_dir()).then_some("web/e2e/node_modules (npm ci in web/e2e)"),
    ]
    .into_iter()
    .flatten()
    .chain(extra.iter().filter(|(present, _)| !present).map(|(_, what)| *what))
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(!ci(), "CI=true but {test} cannot run: missing {}", missing.join(", "));
    eprintln!("note: skipping {test}: missing {} (scripts/test-deps.sh installs them)", missing.join(", "));
    false
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Runs web/e2e/`script` with `cfg` as CORELAB_E2E (its `out` set to [`e2e_artifacts`]), prints
/// what it printed, and asserts that every check passed and each of `shots` was saved.
pub async fn run_e2e(script: &str, mut cfg: Value, limit: Duration, shots: &[&str]) {
    let out = e2e_artifacts();
    cfg["out"] = json!(out);
    let run = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(repo_root().join("web/e2e"))
        .env("CORELAB_E2E", cfg.to_string())
        .env("CHROMIUM", chromium())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("{script} took over {} s", limit.as_secs()))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    for shot in shots {
        assert!(out.join(shot).is_file(), "{script} saved no screenshot {shot}");
    }
}
