//! The site gateway end to end: a central corelab, the `corelab gateway` binary at the "site",
//! dcmtk storescu as the site's PACS, synthetic data with planted PHI. Central holds exactly
//! the instances sent, de-identified; no planted PHI reaches central's storage or the gateway's
//! logs and spool; a SIGKILLed gateway and a central that is down for a while still end with
//! every instance delivered exactly once. Plus held instances assigned on the status page, and
//! `corelab upload`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ingest::{blobs_match, corpus, corpus_trial, corpus_trial_at, files, scan_phi};
use crate::stow::{instance, study_uid, user_with_token};
use crate::support::{ADMIN_PASSWORD, Backend, Env, ServeProcess, client, corelab_bin, dcmtk, spawn_app, wait_ready};

const GW_AE: &str = "CORELAB_GW";

/// `corelab gateway` as a child process; its logs (stderr) go to `log`.
struct Gateway {
    child: Child,
    dicom: SocketAddr,
    status: SocketAddr,
    log: PathBuf,
}

impl Gateway {
    fn start(central: &str, token: &str, spool: &Path, log: &Path) -> Gateway {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = Command::new(corelab_bin())
            .args(["gateway", "--central", central, "--token", token, "--listen", "127.0.0.1:0"])
            .args(["--http", "127.0.0.1:0", "--ae-title", GW_AE, "--spool"])
            .arg(spool)
            .env("CORELAB_DATA_DIR", spool.parent().unwrap())
            .env("CORELAB_GATEWAY_RETRY_INITIAL_MS", "200")
            .env("CORELAB_GATEWAY_RETRY_MAX_MS", "1000")
            .env("CORELAB_GATEWAY_BATCH_INSTANCES", "3")
            .env("CORELAB_GATEWAY_HEARTBEAT_SECONDS", "1")
            .env("CORELAB_LOG_LEVEL", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut dicom, mut status) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "gateway did not start: {seen:?}");
            let Some(Ok(line)) = lines.next() else {
                panic!("gateway exited: {seen:?}: {}", std::fs::read_to_string(log).unwrap())
            };
            seen.push(line.clone());
            let l = line.trim();
            if let Some(rest) = l.strip_prefix("DICOM:") {
                dicom = Some(rest.rsplit(' ').next().unwrap().parse().unwrap());
            }
            if let Some(rest) = l.strip_prefix("status:") {
                status = Some(rest.trim().trim_start_matches("http://").trim_end_matches('/').parse().unwrap());
            }
            if l.starts_with("central:") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Gateway { child, dicom: dicom.unwrap(), status: status.unwrap(), log: log.to_path_buf() }
    }

    async fn status(&self) -> Value {
        client().get(format!("http://{}/status.json", self.status)).send().await.unwrap().json().await.unwrap()
    }

    /// Waits until the queue is empty and `delivered_total >= at_least`.
    async fn drained(&self, at_least: u64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let s = self.status().await;
            if s["queue_depth"] == 0 && s["delivered_total"].as_u64().unwrap() >= at_least {
                return s;
            }
            assert!(Instant::now() < deadline, "the gateway did not drain: {s}\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = Command::new("kill").arg("-9").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dcmtk storescu from the site's AE title to the gateway.
async fn send(gw: SocketAddr, files: &[PathBuf]) -> (bool, String) {
    let out = tokio::process::Command::new(dcmtk("storescu").unwrap())
        .args(["-aet", "SITE01_CT", "-aec", GW_AE, "-nh"])
        .arg("127.0.0.1")
        .arg(gw.port().to_string())
        .args(files)
        .output()
        .await
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// A TCP proxy in front of central that records every byte the gateway sends (the HTTP requests
/// with their bodies) and cuts its first `cut` connections after `cut_after` bytes (a batch
/// broken off mid-request).
struct Proxy {
    addr: SocketAddr,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn proxy(target: SocketAddr, cut: usize, cut_after: usize) -> Proxy {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let cuts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (sent2, cuts2) = (sent.clone(), cuts.clone());
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let index = n;
            n += 1;
            let Ok(server) = tokio::net::TcpStream::connect(target).await else { continue };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let (sent, cuts) = (sent2.clone(), cuts2.clone());
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut forwarded = 0usize;
                loop {
                    let Ok(k) = cr.read(&mut buf).await else { return };
                    if k == 0 {
                        let _ = sw.shutdown().await;
                        return;
                    }
                    let mut k = k;
                    let cutting = index < cut && forwarded + k > cut_after;
                    if cutting {
                        k = cut_after.saturating_sub(forwarded);
                    }
                    sent.lock().unwrap().extend_from_slice(&buf[..k]);
                    if sw.write_all(&buf[..k]).await.is_err() {
                        return;
                    }
                    forwarded += k;
                    if cutting {
                        // Drop both directions: the request breaks off mid-body.
                        cuts.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
    });
    Proxy { addr, sent, cuts }
}

fn small_corpus(seed: &str) -> Option<(tempfile::TempDir, PathBuf, Vec<PathBuf>)> {
    let (dir, bench) =
        corpus(&["--subjects", "2", "--visits", "2", "--slices", "4", "--rows", "32", "--cols", "32", "--seed", seed])?;
    let site1: Vec<PathBuf> = files(dir.path(), "")
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().windows(11).any(|w| w == b"SITE01-0001"))
        .collect();
    assert!(!site1.is_empty());
    Some((dir, bench, site1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_fetches_only_its_sites_settings() {
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let base = t.url("");
    let (_, token) = user_with_token(&base, &t.client, trial, "gwsite1", "site_user", Some("SITE01")).await;
    let r = client().get(t.url("/api/v1/gateway/config")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["site_id"], "SITE01");
    assert_eq!(v["site_ae_titles"], serde_json::json!(["SITE01_CT"]));
    assert_eq!(v["subject_id_pattern"], "{site}-{nnnn}");
    assert_eq!(v["deidentification"]["dates"], "shift");
    let visits: Vec<&str> = v["visits"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(visits, ["V1", "V2"]);
    // Nothing of the other site.
    assert!(!text.contains("SITE02"), "{text}");
    // The token cannot ask for another site's settings.
    let r = client().get(t.url("/api/v1/gateway/config?site=SITE02")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client().get(t.url("/api/v1/gateway/config")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storescu_to_the_gateway_reaches_central_deidentified_once_without_phi() {
    let Some(_) = dcmtk("storescu") else { return };
    let Some((corpus_dir, bench, site1)) = small_corpus("21") else { return };
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let base = t.url("");
    let (_, token) = user_with_token(&base, &t.client, trial, "gwsite1", "site_user", Some("SITE01")).await;
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    // The gateway talks to central through a proxy that records what it sends and breaks off
    // its first connection 6000 bytes in (the settings request, then the first batch).
    let via = proxy(t.addr, 1, 6000).await;
    let gw = Gateway::start(&format!("http://{}", via.addr), &token, &spool, &work.path().join("gateway.log"));

    // A stranger's AE title is refused at association.
    let out = tokio::process::Command::new(dcmtk("storescu").unwrap())
        .args(["-aet", "STRANGER", "-aec", GW_AE, "127.0.0.1", &gw.dicom.port().to_string()])
        .arg(&site1[0])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());

    let (ok, err) = send(gw.dicom, &site1).await;
    assert!(ok, "{err}");
    let s = gw.drained(site1.len() as u64, Duration::from_secs(60)).await;
    assert_eq!(s["waiting_for_assignment"], 0, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    assert!(s["last_success"].is_string(), "{s}");
    // The site resends everything: still one copy each at central.
    let (ok, err) = send(gw.dicom, &site1).await;
    assert!(ok, "{err}");
    gw.drained(2 * site1.len() as u64, Duration::from_secs(60)).await;

    assert_eq!(blobs_match(&t, trial).await, site1.len(), "exactly the instances sent");
    let (instances, studies) = {
        let mut tx = t.app.db().read().await.unwrap();
        (tx.trial_instances(trial).await.unwrap(), tx.trial_studies(trial).await.unwrap())
    };
    let mut uids: Vec<&str> = instances.iter().map(|i| i.sop_instance_uid.as_str()).collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), site1.len());
    let mut visits: Vec<&str> = studies.iter().map(|s| s.visit_id.as_str()).collect();
    visits.sort();
    visits.dedup();
    assert_eq!(visits, ["V1", "V2"], "assigned at the site by the Clinical Trial attributes");
    // Central undid the gateway's date shift: each study's day from the anchor (2023-03-03) is
    // the one of its original study date.
    for s in &studies {
        let original = site1
            .iter()
            .map(|f| dicom_object::open_file(f).unwrap())
            .find(|o| {
                o.element(dicom_dictionary_std::tags::CLINICAL_TRIAL_TIME_POINT_ID).unwrap().to_str().unwrap().trim()
                    == s.visit_id
            })
            .unwrap();
        let date = original.element(dicom_dictionary_std::tags::STUDY_DATE).unwrap().to_str().unwrap().to_string();
        let date = chrono::NaiveDate::parse_from_str(date.trim(), "%Y%m%d").unwrap();
        let anchor = chrono::NaiveDate::from_ymd_opt(2023, 3, 3).unwrap();
        assert_eq!(s.anchor_day, Some((date - anchor).num_days()), "{}", s.visit_id);
    }
    // No original UID at central.
    for f in &site1 {
        let bytes = std::fs::read(f).unwrap();
        for uid in &uids {
            assert!(!bytes.windows(uid.len()).any(|w| w == uid.as_bytes()));
        }
    }
    // Central's dashboard shows the gateway's health from its heartbeats.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = t.client.get(t.url(&format!("/api/v1/trials/{trial}/gateways"))).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        if let Some(g) = v.as_array().and_then(|a| a.first())
            && g["queue_depth"] == 0
            && g["last_success_at"].is_string()
        {
            assert_eq!(g["site_id"], "SITE01");
            assert_eq!(g["name"], "stow");
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And the trial page shows it to the trial's staff.
    let page = t.client.get(t.url(&format!("/trials/{trial}"))).send().await.unwrap().text().await.unwrap();
    let section = page.split("<h2 id=\"gateways-h\">Site gateways</h2>").nth(1).expect("a Site gateways section");
    let table = section.split("</section>").next().unwrap();
    assert!(table.contains("<td>SITE01</td><td>stow "), "{table}");
    assert!(table.contains("s-ok"), "{table}");
    // The cut batch was retried; every STOW-RS request carried de-identified parts only.
    assert_eq!(via.cuts.load(std::sync::atomic::Ordering::SeqCst), 1);
    let sent = via.sent.lock().unwrap().clone();
    assert!(sent.windows(22).filter(|w| *w == b"POST /dicomweb/studies").count() >= 2);
    std::fs::write(work.path().join("http-requests-sent.bin"), &sent).unwrap();
    // No planted PHI in central's storage, the HTTP bodies, the gateway's spool or its logs.
    let log = gw.log_text();
    assert!(log.contains("uploaded to central"), "{log}");
    let (clean, report) =
        scan_phi(&bench, &corpus_dir.path().join("phi_manifest.json"), &[t.env.dir.path(), work.path()]);
    assert!(clean, "PHI found:\n{report}");
    drop(gw);
    t.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn central_process(env: &Env, port: u16, cwd: &Path) -> ServeProcess {
    let mut envs = env.process_env();
    for (k, v) in envs.iter_mut() {
        if k == "CORELAB_HTTP_LISTEN" {
            *v = format!("127.0.0.1:{port}");
        }
    }
    ServeProcess::start(&envs, cwd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_and_a_central_outage_still_deliver_every_instance_exactly_once() {
    let Some(_) = dcmtk("storescu") else { return };
    let Some((corpus_dir, bench, site1)) = small_corpus("23") else { return };
    let env = Env::new(Backend::SqliteLocal).await;
    let port = free_port();
    let mut central = central_process(&env, port, env.dir.path());
    let base = central.url("");
    wait_ready(&base).await;
    let admin = client();
    let r = admin
        .post(central.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let trial = corpus_trial_at(&base, &admin).await;
    let (_, token) = user_with_token(&base, &admin, trial, "gwsite1", "site_user", Some("SITE01")).await;
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let log = work.path().join("gateway.log");
    let (first, second) = site1.split_at(site1.len() / 2);

    // 1. SIGKILL the gateway while the PACS is sending and the gateway uploading.
    let mut gw = Gateway::start(&base, &token, &spool, &log);
    let dicom = gw.dicom;
    let sending = {
        let files = first.to_vec();
        tokio::spawn(async move { send(dicom, &files).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = gw.status().await;
        if s["delivered_total"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing delivered: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.kill9();
    let _ = sending.await.unwrap();
    // Restarted on the same spool; the PACS re-sends what it may not have had acknowledged.
    let gw = Gateway::start(&base, &token, &spool, &log);
    let (ok, err) = send(gw.dicom, first).await;
    assert!(ok, "{err}");
    gw.drained(1, Duration::from_secs(60)).await;

    // 2. Central goes down; the site keeps sending; the gateway keeps everything.
    central.kill9();
    let (ok, err) = send(gw.dicom, second).await;
    assert!(ok, "the gateway accepts while central is down: {err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = gw.status().await;
        if s["queue_depth"].as_u64().unwrap() == second.len() as u64 && s["last_error"].is_string() {
            assert!(s["last_error"].as_str().unwrap().contains("unreachable"), "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status_cmd = Command::new(corelab_bin()).args(["gateway", "status", "--spool"]).arg(&spool).output().unwrap();
    let text = String::from_utf8_lossy(&status_cmd.stdout).to_string();
    assert!(text.contains(&format!("queue depth:            {}", second.len())), "{text}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Central comes back on the same data and port.
    let central = central_process(&env, port, env.dir.path());
    wait_ready(&central.url("")).await;
    gw.drained(1, Duration::from_secs(90)).await;
    drop(central);
    drop(gw);

    // Central holds every instance exactly once, intact and de-identified.
    let t = crate::support::spawn_app_in(env).await;
    assert_eq!(blobs_match(&t, trial).await, site1.len());
    let mut tx = t.app.db().read().await.unwrap();
    let mut uids: Vec<String> =
        tx.trial_instances(trial).await.unwrap().into_iter().map(|i| i.sop_instance_uid).collect();
    drop(tx);
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), site1.len());
    assert!(Spool::empty(&spool));
    let (clean, report) =
        scan_phi(&bench, &corpus_dir.path().join("phi_manifest.json"), &[t.env.dir.path(), work.path()]);
    assert!(clean, "PHI found:\n{report}");
    t.stop().await;
}

struct Spool;
impl Spool {
    fn empty(spool: &Path) -> bool {
        std::fs::read_dir(spool.join("queue")).unwrap().count() == 0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unassignable_instances_wait_at_the_site_until_staff_assign_them() {
    let Some(_) = dcmtk("storescu") else { return };
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let base = t.url("");
    let (_, token) = user_with_token(&base, &t.client, trial, "gwsite1", "site_user", Some("SITE01")).await;
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let gw = Gateway::start(&base, &token, &spool, &work.path().join("gateway.log"));
    // A PACS export without Clinical Trial attributes: a hospital MRN only.
    let study = study_uid();
    let f = work.path().join("a.dcm");
    std::fs::write(&f, instance("MRN-778812", "20230301", &study, 16, 16)).unwrap();
    let (ok, err) = send(gw.dicom, &[f]).await;
    assert!(ok, "{err}");
    let s = gw.status().await;
    assert_eq!(s["waiting_for_assignment"], 1, "{s}");
    assert_eq!(s["queue_depth"], 0, "{s}");
    // Held sealed: the MRN and name are not readable on disk.
    for e in std::fs::read_dir(spool.join("held")).unwrap() {
        let b = std::fs::read(e.unwrap().path()).unwrap();
        assert!(!b.windows(10).any(|w| w == b"MRN-778812"));
        assert!(!b.windows(7).any(|w| w == b"STOWPHI"));
    }
    let page = client().get(format!("http://{}/", gw.status)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("MRN-778812"), "site staff see whom to assign");
    let form_token = page.split("name=\"token\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let post = |subject: &str, tok: &str| {
        client().post(format!("http://{}/assign", gw.status)).form(&[
            ("token", tok),
            ("patient_id", "MRN-778812"),
            ("study_uid", study.as_str()),
            ("subject", subject),
            ("visit", "V1"),
        ])
    };
    assert_eq!(post("SITE01-0001", "forged").send().await.unwrap().status(), 403);
    assert_eq!(post("NOT-A-SUBJECT", &form_token).send().await.unwrap().status(), 422);
    assert_eq!(post("SITE01-0001", &form_token).send().await.unwrap().status(), 200);
    gw.drained(1, Duration::from_secs(30)).await;
    assert_eq!(gw.status().await["waiting_for_assignment"], 0);
    // The mapping is remembered (sealed): the next study of that patient needs only a visit.
    let mapping = std::fs::read(spool.join("mapping.enc")).unwrap();
    assert!(!mapping.windows(10).any(|w| w == b"MRN-778812"));
    let mut tx = t.app.db().read().await.unwrap();
    let studies = tx.trial_studies(trial).await.unwrap();
    drop(tx);
    assert_eq!(studies.len(), 1);
    assert_eq!(studies[0].visit_id, "V1");
    assert_eq!(studies[0].anchor_day, Some(-2), "central undid the site's date shift");
    assert_eq!(blobs_match(&t, trial).await, 1);
    let stored = {
        let mut tx = t.app.db().read().await.unwrap();
        tx.trial_instances(trial).await.unwrap()
    };
    let bytes = t.app.blobs().get_bytes(&stored[0].blob_key).await.unwrap();
    for phi in [&b"MRN-778812"[..], b"STOWPHI", b"Klinikum", b"19570412"] {
        assert!(!bytes.windows(phi.len()).any(|w| w == phi));
    }
    assert!(!gw.log_text().contains("MRN-778812"));
    drop(gw);
    t.stop().await;
}

fn upload(dir: &Path, base: &str, token: &str, spool: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(corelab_bin())
        .arg("upload")
        .arg(dir)
        .args(["--subject", "SITE01-0001", "--visit", "V1", "--central", base, "--token", token, "--attempts", "1"])
        .arg("--spool")
        .arg(spool)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sends_a_folder_resumably_and_summarises_duplicates_and_refusals() {
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let base = t.url("");
    let (_, token) = user_with_token(&base, &t.client, trial, "upsite1", "site_user", Some("SITE01")).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("export");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let study = study_uid();
    let a = instance("MRN-5512", "20230301", &study, 16, 16);
    std::fs::write(dir.join("a.dcm"), &a).unwrap();
    std::fs::write(dir.join("sub/a-copy.dcm"), &a).unwrap();
    std::fs::write(dir.join("b.dcm"), instance("MRN-5512", "20230301", &study, 16, 16)).unwrap();
    std::fs::write(dir.join("c.dcm"), instance("MRN-5512", "20230301", &study, 16, 16)).unwrap();
    std::fs::write(dir.join("notes.txt"), "not dicom at all").unwrap();
    let spool = work.path().join("upload-spool");

    // Central unreachable: everything is de-identified and queued, nothing lost.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, out, err) = upload(&dir, &dead, &token, &spool);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("cannot fetch the site's settings"), "{err}");

    let (code, out, err) = upload(&dir, &base, &token, &spool);
    assert_eq!(code, Some(1), "one file refused: {out}{err}");
    assert!(out.contains("sent:     3 instance(s)"), "{out}");
    assert!(out.contains("skipped:  1"), "{out}");
    assert!(out.contains("refused:  1"), "{out}");
    assert!(out.contains("notes.txt: not a DICOM instance"), "{out}");
    assert!(!out.contains("MRN-5512") && !err.contains("MRN-5512"));
    assert!(!err.contains("ETA"), "no progress bar drawn when stderr is not a terminal: {err}");
    assert_eq!(blobs_match(&t, trial).await, 3);

    // A second run resumes: nothing is sent twice.
    let (_, out, _) = upload(&dir, &base, &token, &spool);
    assert!(out.contains("sent:     0 instance(s)"), "{out}");
    assert!(out.contains("skipped:  4"), "{out}");
    assert_eq!(blobs_match(&t, trial).await, 3);
    let mut tx = t.app.db().read().await.unwrap();
    let studies = tx.trial_studies(trial).await.unwrap();
    drop(tx);
    assert_eq!(studies.len(), 1);
    assert_eq!((studies[0].visit_id.as_str(), studies[0].anchor_day), ("V1", Some(-2)));

    // A second export while central is down: de-identified and queued with the settings kept
    // from the first run; the next run resumes and sends exactly what is missing.
    std::fs::write(dir.join("d.dcm"), instance("MRN-5512", "20230301", &study, 16, 16)).unwrap();
    let (code, out, err) = upload(&dir, &dead, &token, &spool);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("queued:   1 not yet acknowledged"), "{out}");
    assert!(out.contains("run the same command again"), "{out}");
    assert_eq!(blobs_match(&t, trial).await, 3);
    let (code, out, err) = upload(&dir, &base, &token, &spool);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("sent:     1 instance(s)"), "{out}");
    assert_eq!(blobs_match(&t, trial).await, 4);

    // The same export as a ZIP (deflated, as PACS and CD exports write them) plus one new instance:
    // only the new one is sent; a damaged archive is refused with a reason and nothing sent.
    std::fs::write(dir.join("e.dcm"), instance("MRN-5512", "20230301", &study, 16, 16)).unwrap();
    let zip = work.path().join("export.zip");
    let py = format!(
        "import os,zipfile\nz=zipfile.ZipFile({:?},'w',zipfile.ZIP_DEFLATED)\nfor r,_,fs in os.walk({:?}):\n  for f in fs: z.write(os.path.join(r,f), os.path.relpath(os.path.join(r,f),{:?}))\nz.close()",
        zip.display().to_string(),
        dir.display().to_string(),
        dir.display().to_string()
    );
    assert!(Command::new("python3").args(["-c", &py]).status().unwrap().success());
    let (code, out, err) = upload(&zip, &base, &token, &spool);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("sent:     1 instance(s)"), "{out}");
    assert!(out.contains("skipped:  5"), "{out}");
    assert!(out.contains("notes.txt: not a DICOM instance"), "{out}");
    assert_eq!(blobs_match(&t, trial).await, 5);
    let broken = work.path().join("broken.zip");
    std::fs::write(&broken, b"PK not really a zip archive").unwrap();
    let (code, _, err) = upload(&broken, &base, &token, &spool);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a ZIP archive"), "{err}");
    assert_eq!(blobs_match(&t, trial).await, 5);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_shows_a_progress_bar_with_instances_bytes_and_eta_on_a_terminal() {
    if !Path::new("/usr/bin/script").is_file() {
        assert!(!crate::support::ci(), "CI=true but util-linux script is not installed");
        eprintln!("note: script(1) is not installed; skipping");
        return;
    }
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let base = t.url("");
    let (_, token) = user_with_token(&base, &t.client, trial, "ttysite1", "site_user", Some("SITE01")).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("export");
    std::fs::create_dir_all(&dir).unwrap();
    let study = study_uid();
    for i in 0..40 {
        std::fs::write(dir.join(format!("{i:03}.dcm")), instance("MRN-9001", "20230301", &study, 128, 128)).unwrap();
    }
    let cmd = format!(
        "{} upload {} --subject SITE01-0001 --visit V1 --central {base} --token {token} --spool {}",
        corelab_bin().display(),
        dir.display(),
        work.path().join("spool").display()
    );
    // script(1) runs the uploader on a pseudo-terminal and copies what it drew to stdout.
    let out = Command::new("/usr/bin/script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env("CORELAB_GATEWAY_BATCH_INSTANCES", "2")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("/40 instances"), "{screen}");
    assert!(screen.contains("ETA"), "{screen}");
    assert!(screen.contains("KiB") || screen.contains("MiB"), "bytes in the bar: {screen}");
    assert!(screen.contains("sent:     40 instance(s)"), "{screen}");
    assert_eq!(blobs_match(&t, trial).await, 40);
    t.stop().await;
}
