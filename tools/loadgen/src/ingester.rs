//! The ingester under test: a child process configured for the feeder, its log kept, its
//! metrics address read from that log.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use crate::args::Args;
use crate::child::{nap, ChildGuard};
use crate::cpuset::unpinned;
use crate::feeder::Feeder;
use crate::scrape::{http_get, metric_name, Prom};

pub struct Ingester {
    pub child: ChildGuard,
    pub metrics: String,
    pub warn_lines: Arc<AtomicU64>,
}

pub struct IngesterSpec<'a> {
    pub bin: &'a Path,
    pub feeder: &'a Feeder,
    pub dir: &'a Path,
    pub sink: &'a str,
    pub symbols: &'a [String],
    pub streams: &'a [String],
    pub broker: &'a str,
    pub topic: &'a str,
    pub extra_env: &'a [String],
}

pub fn spawn_ingester(s: &IngesterSpec<'_>) -> Result<Ingester> {
    let mut cmd = Command::new(s.bin);
    unpinned(&mut cmd);
    for v in marketflow_ingestor::config::VARS {
        cmd.env_remove(v.env);
    }
    cmd.env("SINK", s.sink)
        .env("BINANCE_WS_URL", s.feeder.ws_url())
        .env("BINANCE_REST_URL", s.feeder.rest_url())
        .env("KAFKA_BROKER", s.broker)
        .env("KAFKA_TOPIC", s.topic)
        .env("STREAMS", s.streams.join(","))
        .env("SYMBOLS", s.symbols.join(","))
        .env("PROM_PORT", "0")
        .env("METRICS_BIND", "127.0.0.1")
        .env("LOG_FORMAT", "json")
        .env("RECOVER_FROM_KAFKA", "off")
        .env("BACKFILL", "off")
        .env("RUST_LOG", "info");
    // TRANSPORT=sbe: any key does for the feeders (Binance checks it; they only want one sent).
    if let Some(url) = s.feeder.sbe_url() {
        let key = s.dir.join("sbe-api-key");
        std::fs::write(&key, "loadgen-sbe-key\n")?;
        cmd.env("TRANSPORT", "sbe").env("BINANCE_SBE_URL", url).env("SBE_API_KEY_FILE", &key);
    }
    if let Some(pem) = s.feeder.cert_pem() {
        let p = s.dir.join("feeder-ca.pem");
        std::fs::write(&p, pem)?;
        cmd.env("TLS_CA_FILE", &p);
    }
    for kv in s.extra_env {
        let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--env wants K=V, got {kv}"))?;
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(cmd, "marketflow-ingestor")?;
    let stderr = child.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let warn_lines = Arc::new(AtomicU64::new(0));
    let warns = warn_lines.clone();
    let mut log = std::fs::File::create(s.dir.join("ingester.log"))?;
    std::thread::Builder::new().name("ingester-log".into()).spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            let _ = writeln!(log, "{line}");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if matches!(v["level"].as_str(), Some("WARN" | "ERROR")) {
                    warns.fetch_add(1, Ordering::Relaxed);
                }
                if v["message"].as_str() == Some("metrics listening") {
                    if let Some(a) = v["addr"].as_str() {
                        let _ = tx.send(a.to_string());
                    }
                }
            }
        }
    })?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = loop {
        if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
            break a;
        }
        if !child.alive() {
            let e = child.stop(libc::SIGTERM, Duration::ZERO);
            bail!("the ingester exited at start ({e}); see {}", s.dir.join("ingester.log").display());
        }
        if Instant::now() > deadline {
            bail!("the ingester did not report its metrics address; see {}", s.dir.join("ingester.log").display());
        }
        nap(Duration::ZERO)?;
    };
    Ok(Ingester { child, metrics: format!("http://{addr}"), warn_lines })
}

pub fn wait_ready(ing: &mut Ingester, timeout: Duration) -> Result<()> {
    let end = Instant::now() + timeout;
    loop {
        if let Ok((200, _)) = http_get(&format!("{}/readyz", ing.metrics)) {
            return Ok(());
        }
        if !ing.child.alive() {
            bail!("the ingester exited before it was ready");
        }
        if Instant::now() > end {
            bail!("the ingester was not ready within {timeout:?}");
        }
        nap(Duration::from_millis(50))?;
    }
}

/// Fails unless the ingester streams with `want` (`transport_info{used}`): an SBE run whose lane
/// fell back to JSON would measure the wrong path.
pub fn check_transport(ing: &Ingester, want: &str) -> Result<()> {
    let (_, text) = http_get(&format!("{}/metrics", ing.metrics))?;
    let name = metric_name("transport_info");
    let info = Prom::parse(&text).0.into_iter().find(|(n, _, v)| *n == name && *v == 1.0).map(|(_, l, _)| l);
    match info {
        Some(l) if l.contains(&format!("used=\"{want}\"")) => Ok(()),
        Some(l) => bail!("the ingester does not stream with {want}: {name}{{{l}}} (see its log)"),
        None => bail!("the ingester reports no {name}"),
    }
}

pub fn ingester_path(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.ingester {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let p = exe.parent().ok_or_else(|| anyhow!("no parent dir"))?.join("marketflow-ingestor");
    if !p.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p marketflow-ingestor -p loadgen) or pass --ingester",
            p.display()
        );
    }
    Ok(p)
}
