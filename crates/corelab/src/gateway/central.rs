//! Talking to central: the site's gateway settings and STOW-RS uploads of spooled instances.

use std::path::PathBuf;
use std::time::Duration;

use corelab_app::gateway::GatewayConfig;

use super::spool::Spool;

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// Central could not be reached or the request broke off: retry later.
    #[error("central is unreachable: {0}")]
    Unreachable(String),
    /// Central answered with an error status (its message names no instance values).
    #[error("central answered {status}: {message}")]
    Status { status: u16, message: String },
}

impl CentralError {
    /// True when the same request may succeed later without a change at the site.
    pub fn transient(&self) -> bool {
        match self {
            CentralError::Unreachable(_) => true,
            CentralError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
        }
    }
}

/// Central corelab, as one site's token sees it.
#[derive(Clone)]
pub struct Central {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// What central said about one STOW-RS request.
#[derive(Debug)]
pub struct StoreAnswer {
    pub status: u16,
    /// Parts stored (Referenced SOP Sequence).
    pub stored: usize,
    /// Failure Reasons of the parts not stored.
    pub failures: Vec<u64>,
    /// Warning header texts (central's words; no values of the instances).
    pub warnings: Vec<String>,
}

fn describe(e: reqwest::Error) -> String {
    // Without the URL: it is ours, but error reports stay short and uniform.
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl Central {
    pub fn new(base: &str, token: &str) -> Result<Central, String> {
        let base = base.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("--central must be an http:// or https:// URL, not {base:?}"));
        }
        if token.trim().is_empty() {
            return Err("--token is empty; give the API token of a site user (corelab tokens are clt_...)".into());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", describe(e)))?;
        Ok(Central { base, token: token.trim().to_string(), http })
    }

    async fn error_of(r: reqwest::Response) -> CentralError {
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.chars().take(200).collect());
        CentralError::Status { status, message }
    }

    /// `GET /api/v1/gateway/config` with the site's token.
    pub async fn config(&self) -> Result<GatewayConfig, CentralError> {
        let r = self
            .http
            .get(format!("{}/api/v1/gateway/config", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| CentralError::Unreachable(describe(e)))?;
        if !r.status().is_success() {
            return Err(Self::error_of(r).await);
        }
        r.json().await.map_err(|e| CentralError::Unreachable(describe(e)))
    }

    /// `POST /api/v1/gateway/heartbeat`: the gateway's health for the trial dashboard.
    pub async fn heartbeat(&self, beat: &corelab_app::gateway::Heartbeat) -> Result<(), CentralError> {
        let r = self
            .http
            .post(format!("{}/api/v1/gateway/heartbeat", self.base))
            .bearer_auth(&self.token)
            .json(beat)
            .send()
            .await
            .map_err(|e| CentralError::Unreachable(describe(e)))?;
        if !r.status().is_success() {
            return Err(Self::error_of(r).await);
        }
        Ok(())
    }

    /// One STOW-RS request with `parts` (de-identified Part 10 instances).
    pub async fn store(&self, parts: &[Vec<u8>]) -> Result<StoreAnswer, CentralError> {
        let boundary = format!("corelab-gw-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::with_capacity(parts.iter().map(|p| p.len() + 128).sum::<usize>() + 64);
        for p in parts {
            body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
            body.extend_from_slice(p);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let r = self
            .http
            .post(format!("{}/dicomweb/studies?deidentified_by=gateway", self.base))
            .bearer_auth(&self.token)
            .header("content-type", format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"))
            .header("accept", "application/dicom+json")
            .body(body)
            .send()
            .await
            .map_err(|e| CentralError::Unreachable(describe(e)))?;
        let status = r.status().as_u16();
        let is_store_response = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/dicom+json"));
        if !is_store_response {
            return Err(Self::error_of(r).await);
        }
        let warnings: Vec<String> =
            r.headers().get_all("warning").iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
        let v: serde_json::Value = r.json().await.map_err(|e| CentralError::Unreachable(describe(e)))?;
        let seq = |tag: &str| v[tag]["Value"].as_array().cloned().unwrap_or_default();
        Ok(StoreAnswer {
            status,
            stored: seq("00081199").len(),
            failures: seq("00081198").iter().map(|i| i["00081197"]["Value"][0].as_u64().unwrap_or(0xC000)).collect(),
            warnings,
        })
    }
}

/// What one pass of [`drain_once`] did.
#[derive(Debug, Default)]
pub struct Pass {
    pub delivered: usize,
    pub delivered_bytes: u64,
    pub refused: Vec<(String, String)>,
    /// The error that stopped the pass (retry later), if any.
    pub error: Option<CentralError>,
}

/// Failure reasons that will not change on a retry: unreadable, conflicting, wrong study.
fn permanent(reason: u64) -> bool {
    matches!(reason, 0xC000 | 0xC111 | 0xA900) || (0xC000..=0xCFFF).contains(&reason)
}

/// Uploads the queue in batches until it is empty or an error stops the pass. An instance
/// leaves the queue only after central acknowledged it.
pub async fn drain_once(
    central: &Central,
    spool: &Spool,
    batch_instances: usize,
    batch_bytes: u64,
    mut progress: impl FnMut(usize, u64),
) -> Pass {
    let mut pass = Pass::default();
    loop {
        let queued = spool.queued();
        if queued.is_empty() {
            return pass;
        }
        let mut batch: Vec<(PathBuf, u64)> = Vec::new();
        let mut bytes = 0u64;
        for (p, n) in queued {
            if !batch.is_empty() && (batch.len() >= batch_instances.max(1) || bytes + n > batch_bytes) {
                break;
            }
            bytes += n;
            batch.push((p, n));
        }
        let mut parts = Vec::with_capacity(batch.len());
        let mut present = Vec::with_capacity(batch.len());
        for (p, n) in &batch {
            match std::fs::read(p) {
                Ok(b) => {
                    parts.push(b);
                    present.push((p.clone(), *n));
                }
                // Acknowledged and removed by a concurrent pass.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    pass.error = Some(CentralError::Unreachable(format!("cannot read the spool: {e}")));
                    return pass;
                }
            }
        }
        if present.is_empty() {
            continue;
        }
        match central.store(&parts).await {
            Ok(a) if a.failures.is_empty() && a.stored == present.len() => {
                let paths: Vec<PathBuf> = present.iter().map(|(p, _)| p.clone()).collect();
                if let Err(e) = spool.acknowledge(&paths) {
                    pass.error = Some(CentralError::Unreachable(e.to_string()));
                    return pass;
                }
                let b: u64 = present.iter().map(|(_, n)| n).sum();
                pass.delivered += present.len();
                pass.delivered_bytes += b;
                progress(present.len(), b);
            }
            Ok(a) if present.len() > 1 => {
                // Mixed outcome: which part failed is clear only one at a time. Re-sending the
                // stored ones is harmless (central keeps no second copy).
                tracing::info!(
                    status = a.status,
                    failed = a.failures.len(),
                    "mixed STOW-RS outcome; sending one by one"
                );
                for (i, part) in parts.iter().enumerate() {
                    let (path, n) = &present[i];
                    match central.store(std::slice::from_ref(part)).await {
                        Ok(one) => {
                            if let Err(e) = settle_one(spool, path, &one, &mut pass) {
                                pass.error = Some(e);
                                return pass;
                            }
                            if one.failures.is_empty() {
                                pass.delivered_bytes += n;
                                progress(1, *n);
                            }
                        }
                        Err(e) => {
                            pass.error = Some(e);
                            return pass;
                        }
                    }
                }
            }
            Ok(a) => {
                let (path, n) = &present[0];
                if let Err(e) = settle_one(spool, path, &a, &mut pass) {
                    pass.error = Some(e);
                    return pass;
                }
                if a.failures.is_empty() {
                    pass.delivered_bytes += n;
                    progress(1, *n);
                }
            }
            Err(e) => {
                pass.error = Some(e);
                return pass;
            }
        }
    }
}

/// One instance's answer: acknowledged, refused for good, or an error to retry.
fn settle_one(spool: &Spool, path: &std::path::Path, a: &StoreAnswer, pass: &mut Pass) -> Result<(), CentralError> {
    let name = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    if a.failures.is_empty() && a.stored == 1 {
        spool.acknowledge(&[path.to_path_buf()]).map_err(|e| CentralError::Unreachable(e.to_string()))?;
        pass.delivered += 1;
        return Ok(());
    }
    let reason = a.failures.first().copied().unwrap_or(0xC000);
    let words = a.warnings.first().cloned().unwrap_or_default();
    if permanent(reason) {
        let why = format!("central refused it ({reason:#06x}): {words}");
        tracing::warn!(instance = %name, reason = format!("{reason:#06x}"), "central refused an instance; moved to failed/");
        spool.fail(path, &why).map_err(|e| CentralError::Unreachable(e.to_string()))?;
        pass.refused.push((name, why));
        Ok(())
    } else {
        Err(CentralError::Status {
            status: a.status,
            message: format!("central could not store an instance ({reason:#06x}); will retry"),
        })
    }
}
