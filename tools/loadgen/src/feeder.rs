//! Who sends to the ingester: the project's Binance simulator, or the replay feeder; each over
//! Binance's JSON streams or its SBE streams (`--transport sbe`: the simulator's SBE endpoint, or
//! the replay feeder's SBE frames with a simulator answering `exchangeInfo`, which the ingester
//! reads the decimal scales from before it dials SBE).

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Result};
use binance_sim::{self as sim, Arrival, SimConfig, SimHandle, StreamKind};

use crate::replay::Replay;

pub enum Feeder {
    // Boxed: a running simulator's handle is several times the replay's size.
    Sim {
        h: Box<SimHandle>,
        kinds: Vec<StreamKind>,
        nsym: u64,
        sbe: bool,
    },
    /// `rest`: a simulator for REST (`exchangeInfo`) when the replay serves SBE.
    Replay {
        r: Replay,
        rest: Option<Box<SimHandle>>,
    },
}

/// How the feed travels and is timed, besides its rate and streams.
#[derive(Clone, Copy, Debug, Default)]
pub struct FeedOpts {
    pub tls: bool,
    pub sbe: bool,
    /// The simulator's arrival process; for the replay feeder only `even:K`/`burst:K` (K messages
    /// a write; unset: whatever is due), anything else refused.
    pub arrival: Option<Arrival>,
    /// Trades an event (the replay feeder's trade streams only; 0 is taken as 1).
    pub trades_per_event: u32,
}

impl Feeder {
    pub fn start(
        kind: &str,
        rate: f64,
        symbols: &[String],
        streams: &[String],
        duration: Option<Duration>,
        opts: FeedOpts,
    ) -> Result<Feeder> {
        let FeedOpts { tls, sbe, arrival, trades_per_event } = opts;
        let per_event = trades_per_event.max(1);
        if per_event > 1 && kind != "replay" {
            bail!("--trades-per-event needs --feeder replay (the simulator sends a trade an event)");
        }
        let kinds: Vec<StreamKind> =
            streams.iter().map(|s| s.parse::<StreamKind>().map_err(anyhow::Error::msg)).collect::<Result<_>>()?;
        let per_kind = rate / kinds.len().max(1) as f64;
        match kind {
            "replay" => {
                let per_write = match arrival {
                    None => None,
                    Some(a) if a.process == sim::Process::Even => Some(a.per_segment),
                    Some(a) => {
                        bail!("the replay feeder takes even:K or burst:K arrivals (K messages a write), not {a}")
                    }
                };
                let r = Replay::spawn(rate, duration, tls, sbe, per_write, per_event)?;
                // It only answers REST: its market generates nothing until someone subscribes.
                let rest = sbe
                    .then(|| {
                        sim::spawn(SimConfig { symbols: symbols.to_vec(), tls, ..SimConfig::default() }, "127.0.0.1:0")
                    })
                    .transpose()?
                    .map(Box::new);
                Ok(Feeder::Replay { r, rest })
            }
            _ => {
                let cfg = SimConfig {
                    symbols: symbols.to_vec(),
                    trade_rate: per_kind,
                    aux_rate: per_kind / symbols.len().max(1) as f64,
                    duration,
                    tls,
                    arrival,
                    ..SimConfig::default()
                };
                let h = sim::spawn(cfg, "127.0.0.1:0")?;
                Ok(Feeder::Sim { h: Box::new(h), kinds, nsym: symbols.len() as u64, sbe })
            }
        }
    }

    /// The JSON streams' base URL (`BINANCE_WS_URL`). The SBE replay has none: its own address,
    /// so that an ingester that fell back to JSON gets binary frames it refuses, not data.
    pub fn ws_url(&self) -> String {
        match self {
            Feeder::Sim { h, .. } => h.ws_url(),
            Feeder::Replay { r, .. } => format!("{}://{}", if r.cert_pem.is_some() { "wss" } else { "ws" }, r.addr),
        }
    }

    /// The SBE streams' base URL (`BINANCE_SBE_URL`), when the feed is SBE.
    pub fn sbe_url(&self) -> Option<String> {
        match self {
            Feeder::Sim { h, sbe: true, .. } => Some(h.sbe_url()),
            Feeder::Replay { rest: Some(_), .. } => Some(self.ws_url()),
            _ => None,
        }
    }

    pub fn rest_url(&self) -> String {
        match self {
            Feeder::Sim { h, .. } => h.rest_url(),
            Feeder::Replay { rest: Some(h), .. } => h.rest_url(),
            // Never used: backfill and recovery are off, and a JSON feed needs no exchangeInfo.
            Feeder::Replay { rest: None, .. } => "http://127.0.0.1:9".into(),
        }
    }

    pub fn cert_pem(&self) -> Option<&str> {
        match self {
            Feeder::Sim { h, .. } => h.cert_pem.as_deref(),
            Feeder::Replay { r, .. } => r.cert_pem.as_deref(),
        }
    }

    pub fn sent(&self) -> u64 {
        match self {
            Feeder::Sim { h, .. } => h.market.sent.load(Ordering::Relaxed),
            Feeder::Replay { r, .. } => r.shared.sent.load(Ordering::Relaxed),
        }
    }

    /// Messages the schedule says should have gone out by now. For the simulator this starts
    /// the market clock if nobody subscribed yet, so it is only read once the ingester is in.
    pub fn scheduled(&self) -> u64 {
        match self {
            // Per symbol: under a Poisson arrival each symbol has its own count.
            Feeder::Sim { h, kinds, nsym, .. } => {
                kinds.iter().map(|k| (0..*nsym as usize).map(|s| h.market.generated_for(*k, s)).sum::<u64>()).sum()
            }
            Feeder::Replay { r, .. } => r.scheduled(),
        }
    }

    /// Writes that carried messages (the simulator; the replay feeder does not count them).
    pub fn data_writes(&self) -> Option<u64> {
        match self {
            Feeder::Sim { h, .. } => Some(h.market.data_writes.load(Ordering::Relaxed)),
            Feeder::Replay { .. } => None,
        }
    }

    pub fn thread_prefix(&self) -> &'static str {
        match self {
            Feeder::Sim { sbe: true, .. } => "sim-sbe-conn",
            Feeder::Sim { .. } => "sim-conn",
            Feeder::Replay { .. } => "replay",
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            Feeder::Sim { .. } => None,
            Feeder::Replay { r, .. } => r.shared.error.lock().unwrap().clone(),
        }
    }
}
