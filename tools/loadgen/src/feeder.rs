//! Who sends to the ingester: the project's Binance simulator, or the replay feeder.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use binance_sim::{self as sim, SimConfig, SimHandle, StreamKind};

use crate::replay::Replay;

pub enum Feeder {
    // Boxed: a running simulator's handle is several times the replay's size.
    Sim { h: Box<SimHandle>, kinds: Vec<StreamKind>, nsym: u64 },
    Replay(Replay),
}

impl Feeder {
    pub fn start(
        kind: &str,
        rate: f64,
        symbols: &[String],
        streams: &[String],
        duration: Option<Duration>,
        tls: bool,
    ) -> Result<Feeder> {
        let kinds: Vec<StreamKind> =
            streams.iter().map(|s| s.parse::<StreamKind>().map_err(anyhow::Error::msg)).collect::<Result<_>>()?;
        let per_kind = rate / kinds.len().max(1) as f64;
        match kind {
            "replay" => Ok(Feeder::Replay(Replay::spawn(rate, duration, tls)?)),
            _ => {
                let cfg = SimConfig {
                    symbols: symbols.to_vec(),
                    trade_rate: per_kind,
                    aux_rate: per_kind / symbols.len().max(1) as f64,
                    duration,
                    tls,
                    ..SimConfig::default()
                };
                let h = sim::spawn(cfg, "127.0.0.1:0")?;
                Ok(Feeder::Sim { h: Box::new(h), kinds, nsym: symbols.len() as u64 })
            }
        }
    }

    pub fn ws_url(&self) -> String {
        match self {
            Feeder::Sim { h, .. } => h.ws_url(),
            Feeder::Replay(r) => format!("{}://{}", if r.cert_pem.is_some() { "wss" } else { "ws" }, r.addr),
        }
    }

    pub fn rest_url(&self) -> String {
        match self {
            Feeder::Sim { h, .. } => h.rest_url(),
            // Never used: backfill and recovery are off.
            Feeder::Replay(_) => "http://127.0.0.1:9".into(),
        }
    }

    pub fn cert_pem(&self) -> Option<&str> {
        match self {
            Feeder::Sim { h, .. } => h.cert_pem.as_deref(),
            Feeder::Replay(r) => r.cert_pem.as_deref(),
        }
    }

    pub fn sent(&self) -> u64 {
        match self {
            Feeder::Sim { h, .. } => h.market.sent.load(Ordering::Relaxed),
            Feeder::Replay(r) => r.shared.sent.load(Ordering::Relaxed),
        }
    }

    /// Messages the schedule says should have gone out by now. For the simulator this starts
    /// the market clock if nobody subscribed yet, so it is only read once the ingester is in.
    pub fn scheduled(&self) -> u64 {
        match self {
            Feeder::Sim { h, kinds, nsym } => kinds.iter().map(|k| h.market.generated(*k) * nsym).sum(),
            Feeder::Replay(r) => r.scheduled(),
        }
    }

    pub fn thread_prefix(&self) -> &'static str {
        match self {
            Feeder::Sim { .. } => "sim-conn",
            Feeder::Replay(_) => "replay",
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            Feeder::Sim { .. } => None,
            Feeder::Replay(r) => r.shared.error.lock().unwrap().clone(),
        }
    }
}
