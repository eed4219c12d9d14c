//! `corelab serve --demo`: the real binary sets up the demo trial on a fresh SQLite + local-files
//! data directory; the accounts and password it prints work, every role finds something to see,
//! the stored images carry none of the synthetic patient identity, and starting again (with or
//! without --demo) adds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use crate::support::{ADMIN_PASSWORD, Backend, Env, ServeProcess, client, wait_ready};
use crate::world::check;

/// The password and the accounts printed in the banner's DEMO lines.
fn banner_accounts(stdout: &[String]) -> (String, Vec<String>) {
    let password = stdout
        .iter()
        .find_map(|l| l.split_once(", password ").map(|(_, p)| p.trim().to_string()))
        .unwrap_or_else(|| panic!("no demo password in the banner: {stdout:#?}"));
    let accounts = stdout
        .iter()
        .filter_map(|l| l.trim().strip_prefix("DEMO ").and_then(|r| r.split_whitespace().next()))
        .filter(|a| a.starts_with("demo-"))
        .map(str::to_string)
        .collect();
    (password, accounts)
}

async fn login(base: &str, username: &str, password: &str) -> reqwest::Client {
    let c = client();
    let r = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login as {username}: {}", r.text().await.unwrap());
    c
}

async fn get(c: &reqwest::Client, base: &str, path: &str) -> Value {
    check(c.get(format!("{base}{path}")).send().await.unwrap(), 200).await
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// What must not change across restarts: accounts, subjects, visit states, queries, tasks.
async fn snapshot(base: &str, admin: &reqwest::Client, tm: &reqwest::Client, trial: &str) -> Value {
    let mut users: Vec<String> = get(admin, base, "/api/v1/users")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    users.sort();
    let trials = get(admin, base, "/api/v1/trials").await.as_array().unwrap().len();
    let grid = get(tm, base, &format!("/api/v1/trials/{trial}/visits")).await;
    let queries = get(tm, base, &format!("/api/v1/trials/{trial}/queries")).await.as_array().unwrap().len();
    let grants = get(tm, base, &format!("/api/v1/trials/{trial}/grants")).await.as_array().unwrap().len();
    let reads = get(tm, base, &format!("/api/v1/trials/{trial}/read-tasks")).await;
    json!({"users": users, "trials": trials, "grid": grid, "queries": queries, "grants": grants, "reads": reads})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_sets_up_a_trial_with_something_on_every_page_once() {
    let env = Env::new(Backend::SqliteLocal).await;
    let envs = env.process_env();
    let started = Instant::now();
    let p = ServeProcess::start_with(&["serve", "--demo"], &envs, env.dir.path());
    let base = p.url("");
    wait_ready(&base).await;
    eprintln!("corelab serve --demo was ready in {:.1} s", started.elapsed().as_secs_f64());
    let banner = p.stdout.join("\n");
    assert!(banner.contains("DEMO MODE"), "{banner}");
    let (password, accounts) = banner_accounts(&p.stdout);
    for want in [
        "demo-tm",
        "demo-site101",
        "demo-site102",
        "demo-qc",
        "demo-reader1",
        "demo-reader2",
        "demo-adjudicator",
        "demo-monitor",
        "demo-sponsor",
    ] {
        assert!(accounts.iter().any(|a| a == want), "{want} is not printed: {banner}");
    }
    // Every printed account logs in with the printed password.
    let mut c = BTreeMap::new();
    for a in &accounts {
        c.insert(a.as_str(), login(&base, a, &password).await);
    }
    let trials = get(&c["demo-tm"], &base, "/api/v1/trials").await;
    let trial = trials.as_array().unwrap().iter().find(|t| t["protocol_id"] == "ACME-101").expect("the demo trial");
    let trial = trial["id"].as_str().unwrap().to_string();

    // The trial manager's grid: both sites, visits in many states.
    let grid = get(&c["demo-tm"], &base, &format!("/api/v1/trials/{trial}/visits")).await;
    let rows = grid.as_array().unwrap();
    let sites: BTreeSet<&str> = rows.iter().map(|r| r["site_id"].as_str().unwrap()).collect();
    assert_eq!(sites, BTreeSet::from(["101", "102"]), "{grid:#}");
    let states: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r["visits"].as_array().unwrap().iter().map(|v| v["state"].as_str().unwrap()))
        .collect();
    assert!(states.len() >= 4, "{states:?}");
    for want in ["qc_passed", "awaiting_qc1", "qc_rejected", "qc_failed"] {
        assert!(states.contains(want), "no visit in state {want}: {states:?}");
    }
    assert!(
        states.contains("window_open") || states.contains("overdue"),
        "a visit is expected and not received: {states:?}"
    );

    // QC: the queue is not empty for the QC reviewer.
    let queue = get(&c["demo-qc"], &base, &format!("/api/v1/trials/{trial}/qc-queue")).await;
    assert!(!queue.as_array().unwrap().is_empty(), "{queue:#}");

    // Readers: open tasks, and reader 1 has submitted reads.
    let tasks1 = get(&c["demo-reader1"], &base, &format!("/api/v1/trials/{trial}/reading/tasks")).await;
    let tasks2 = get(&c["demo-reader2"], &base, &format!("/api/v1/trials/{trial}/reading/tasks")).await;
    let states_of = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap().to_string()).collect()
    };
    assert!(states_of(&tasks1).iter().any(|s| s == "open"), "{tasks1:#}");
    assert!(states_of(&tasks1).iter().any(|s| s == "submitted"), "{tasks1:#}");
    assert!(states_of(&tasks2).iter().any(|s| s == "open"), "{tasks2:#}");
    // The readers disagreed on progression: the adjudicator has a case.
    let adj = get(&c["demo-adjudicator"], &base, &format!("/api/v1/trials/{trial}/adjudication/tasks")).await;
    assert!(!adj.as_array().unwrap().is_empty(), "{adj:#}");

    // A site user sees only their site's subjects and grid rows.
    for (who, site) in [("demo-site101", "101"), ("demo-site102", "102")] {
        let subjects = get(&c[who], &base, &format!("/api/v1/trials/{trial}/subjects")).await;
        let subjects = subjects.as_array().unwrap();
        assert!(!subjects.is_empty());
        assert!(subjects.iter().all(|s| s["site_id"] == site), "{who}: {subjects:#?}");
        let grid = get(&c[who], &base, &format!("/api/v1/trials/{trial}/visits")).await;
        assert!(grid.as_array().unwrap().iter().all(|r| r["site_id"] == site), "{who}: {grid:#}");
    }
    // Site 102 has open data queries: the QC rejection and the automatic one.
    let queries = get(&c["demo-site102"], &base, &format!("/api/v1/trials/{trial}/queries")).await;
    let open: BTreeSet<&str> = queries
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["state"] == "open")
        .map(|q| q["source"].as_str().unwrap())
        .collect();
    assert!(open.contains("qc_review") && open.contains("auto_qc"), "{queries:#}");

    // The pages show it too (same session cookie as the API).
    let page = |who: &'static str, path: String| {
        let req = c[who].get(format!("{base}{path}"));
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{who} {path}");
            r.text().await.unwrap()
        }
    };
    let queue = page("demo-qc", format!("/trials/{trial}/qc")).await;
    assert!(queue.contains("101-003"), "the QC queue page lists 101-003's baseline");
    let calendar = page("demo-site101", format!("/trials/{trial}/calendar")).await;
    assert!(calendar.contains("101-001") && !calendar.contains("102-001"), "site 101 sees only its subjects");
    let queries = page("demo-site102", format!("/trials/{trial}/queries")).await;
    assert!(queries.contains("102-001") && queries.contains("102-002"), "site 102's open queries");

    // Done as the people: QC decisions and reads are audited and signed by the demo accounts.
    let admin = login(&base, "admin", ADMIN_PASSWORD).await;
    let audit = get(&admin, &base, &format!("/api/v1/audit?trial_id={trial}&limit=5000")).await;
    let did = |actor: &str, action: &str, object: &str| {
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["actor_name"] == actor && r["action"] == action && r["object_type"] == object)
    };
    assert!(did("demo-qc", "review", "visit_qc") && did("demo-qc2", "review", "visit_qc"));
    assert!(did("demo-qc", "sign", "qc_review") && did("demo-reader1", "sign", "read"));
    assert!(did("demo-site101", "create", "subject") && did("demo-site101", "create", "instance"));
    assert!(did("corelab", "evaluate", "visit_qc"), "automated QC ran as the system");

    // No synthetic PHI in any stored byte (images and qualification scans alike).
    let mut stored = Vec::new();
    files(&env.dir.path().join("blobs"), &mut stored);
    assert!(stored.len() >= 60, "{} blobs", stored.len());
    for path in &stored {
        let bytes = std::fs::read(path).unwrap();
        for marker in corelab::demo::FAKE_PHI_MARKERS {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{} holds the synthetic PHI {marker}",
                path.display()
            );
        }
    }
    // ...although the images sent had it (the check above would notice).
    let sent = corelab::demo::fake_patient("101-001");
    assert!(sent.name.starts_with("ZZDEMO") && sent.patient_id.starts_with("ZZMRN"));

    let before = snapshot(&base, &admin, &c["demo-tm"], &trial).await;
    drop(p);

    // Again with --demo: found, nothing added.
    let p = ServeProcess::start_with(&["serve", "--demo"], &envs, env.dir.path());
    let base = p.url("");
    wait_ready(&base).await;
    assert!(p.stdout.join("\n").contains("nothing was added"), "{:#?}", p.stdout);
    let admin = login(&base, "admin", ADMIN_PASSWORD).await;
    let tm = login(&base, "demo-tm", &password).await;
    let after = snapshot(&base, &admin, &tm, &trial).await;
    assert_eq!(before, after, "a second start with --demo changed the data");
    drop(p);

    // Without --demo on the same data: no demo banner, no password shown, nothing added.
    let p = ServeProcess::start_with(&["serve"], &envs, env.dir.path());
    let base = p.url("");
    wait_ready(&base).await;
    let out = p.stdout.join("\n");
    assert!(!out.contains("DEMO") && !out.contains(&password), "{out}");
    let admin = login(&base, "admin", ADMIN_PASSWORD).await;
    let tm = login(&base, "demo-tm", &password).await;
    assert_eq!(before, snapshot(&base, &admin, &tm, &trial).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_demo_creates_no_demo_accounts() {
    let env = Env::new(Backend::SqliteLocal).await;
    let p = ServeProcess::start_with(&["serve"], &env.process_env(), env.dir.path());
    let base = p.url("");
    wait_ready(&base).await;
    assert!(!p.stdout.join("\n").contains("DEMO"), "{:#?}", p.stdout);
    let admin = login(&base, "admin", ADMIN_PASSWORD).await;
    let users = get(&admin, &base, "/api/v1/users").await;
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["admin"]);
    assert!(get(&admin, &base, "/api/v1/trials").await.as_array().unwrap().is_empty());
    let r = client()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "demo-tm", "password": corelab::demo::DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
