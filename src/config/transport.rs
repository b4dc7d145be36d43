//! How spot market data travels: `TRANSPORT=json` (the text streams) or `sbe` (Binance's binary
//! SBE streams on their own endpoint, `BINANCE_SBE_URL`, which need an API key:
//! `SBE_API_KEY_FILE`). The table here follows the spot variables' in `--help`, `--check-config`
//! and README. Whether SBE is really used is decided at start (`lane.rs`): without a key, or
//! without every symbol's decimal scale, the lane says so and streams JSON.

use std::time::Duration;

use super::build::Build;
use super::parse;
use super::var::*;

/// The transport asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    #[default]
    Json,
    Sbe,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        name_of(TRANSPORTS, self)
    }
}

pub(super) const TRANSPORTS: Choices<Transport> = &[("json", Transport::Json), ("sbe", Transport::Sbe)];

/// The longest API key file read (a Binance key is 64 characters; Ed25519 keys are short).
const MAX_KEY_FILE_BYTES: u64 = 4096;

impl Build<'_> {
    fn sbe_api_key_file(&mut self, v: &str) {
        let Some(path) = parse::non_empty(v) else { return };
        self.cfg.sbe_api_key_file = Some(path.into());
        let Some(key) = parse::secret_file(path, MAX_KEY_FILE_BYTES, &mut self.errs) else { return };
        // It goes in an HTTP header: visible ASCII only (and never quoted back).
        if key.expose().bytes().all(|b| b.is_ascii_graphic()) {
            self.cfg.sbe_api_key = key;
        } else {
            self.errs
                .push(format_args!("`{path}` holds characters an HTTP header cannot carry (a key is visible ASCII)"));
        }
    }
}

/// Where an API key may travel in clear: a loopback simulator. Anywhere else the key, which
/// Binance ties to an account, would be readable on the way (`ws://`), so it is refused.
pub(super) fn check_key_in_clear(c: &super::Config, errs: &mut Vec<String>) {
    let host = c.sbe_ws.host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if c.transport == Transport::Sbe && !c.sbe_api_key.is_empty() && !c.sbe_ws.tls && !loopback {
        errs.push(format!(
            "BINANCE_SBE_URL: `ws://{}` would carry the SBE API key in clear; use `wss://` (plain `ws://` only to \
             a loopback address)",
            c.sbe_ws.authority()
        ));
    }
}

/// `TRANSPORT=sbe` streams what Binance's SBE endpoint serves (`binance::sbe::carried`) over SBE
/// and the other kinds over JSON connections beside it (`event_loop::route_of`). `depth` and
/// `depth@100ms` are one SBE stream (`@depth`, 20 ms), so only one of them may be asked for.
pub(super) fn check_kinds(c: &super::Config, errs: &mut Vec<String>) {
    // (A bad TRANSPORT is said already.)
    let transport_ok = !errs.iter().any(|e| e.starts_with("TRANSPORT:"));
    if c.transport != Transport::Sbe || !transport_ok || c.symbols.is_empty() {
        return;
    }
    use crate::stream::StreamKind::{Depth, Depth100ms};
    if c.streams.contains(&Depth) && c.streams.contains(&Depth100ms) {
        errs.push(
            "TRANSPORT: `sbe` carries depth and depth@100ms as one stream (SBE `@depth`, every 20 ms); \
                   STREAMS may name only one of them"
                .into(),
        );
    }
}

impl super::Config {
    /// With `TRANSPORT=sbe` and spot symbols: which kinds go over SBE and which over JSON
    /// beside it (`--check-config` prints it; the lane logs it at start).
    pub fn transport_split(&self) -> Option<String> {
        if self.transport != Transport::Sbe || self.symbols.is_empty() {
            return None;
        }
        let carried = crate::binance::sbe::carried;
        let names = |sbe: bool| {
            let ks: Vec<String> =
                self.streams.iter().filter(|k| carried(**k).is_some() == sbe).map(|k| k.to_string()).collect();
            if ks.is_empty() {
                "none".to_string()
            } else {
                ks.join(",")
            }
        };
        Some(format!(
            "TRANSPORT=sbe: over SBE {}; over JSON beside it (no SBE stream) {}; all over JSON while SBE is \
             unavailable",
            names(true),
            names(false)
        ))
    }
}

/// In the order `--help`, `--check-config` and README list them, after the spot variables.
pub(super) const TRANSPORT_VARS: &[Var] = &[
    Var {
        env: "TRANSPORT",
        flag: "transport",
        value_name: "json|sbe",
        unset: Unset::Default("json"),
        help: "How spot market data travels: `json` (text streams) or `sbe` (Binance's binary SBE streams)",
        more: "`sbe` carries `trade`, `bookTicker` (as SBE `@bestBidAsk`) and `depth` or `depth@100ms` (as SBE \
               `@depth`, every 20 ms) on `BINANCE_SBE_URL` with the key of `SBE_API_KEY_FILE`; records are the \
               same as JSON's (`book_ticker` adds its event time). Other kinds (`aggTrade`, `kline_*`, ...) go over \
               JSON connections beside the SBE ones (`--check-config` lists which go where); `depth` with \
               `depth@100ms` exits 64 (one SBE stream). Without a key, or when `exchangeInfo` gives no price or \
               quantity scale for a symbol, the SBE kinds stream JSON too and the lane says so (log line, \
               `transport_info` metric, `/readyz`). USD-M always streams JSON.",
        secret: false,
        apply: |v, b| {
            if let Some(t) = b.choice(v, TRANSPORTS, "json or sbe") {
                b.cfg.transport = t;
            }
        },
        show: |c, o| o.value(c.transport.as_str()),
    },
    Var {
        env: "SBE_API_KEY_FILE",
        flag: "sbe-api-key-file",
        value_name: "PATH",
        unset: Unset::Empty,
        help: "File holding the Binance API key (Ed25519) the SBE streams require, sent as `X-MBX-APIKEY`",
        more: "Read as `KAFKA_PASSWORD_FILE` is (a regular file, here at most 4 KiB, one trailing newline \
               dropped); the key is never logged or shown.",
        secret: false,
        apply: |v, b| b.sbe_api_key_file(v),
        // The path: what the file holds is never shown.
        show: |c, o| o.value(c.sbe_api_key_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
    },
    Var {
        env: "BINANCE_SBE_URL",
        flag: "binance-sbe-url",
        value_name: "URL",
        unset: Unset::Default("wss://stream-sbe.binance.com:9443"),
        help: "Binance SBE WebSocket base URL (`TRANSPORT=sbe`)",
        more: "The same rules as `BINANCE_WS_URL`; `ws://` (the key in clear) only to a loopback address.",
        secret: false,
        apply: |v, b| {
            if let Some(e) = b.endpoint(v, WS_SCHEMES) {
                b.cfg.sbe_ws = e;
            }
        },
        show: |c, o| o.value(url(&c.sbe_ws, WS_SCHEMES)),
    },
    Var {
        env: "SBE_MAX_FAILURES",
        flag: "sbe-max-failures",
        value_name: "N",
        unset: Unset::Default("5"),
        help: "SBE connection attempts in a row that fail before the lane streams JSON",
        more: "1 to 100. A failure is an attempt that does not lead to a connection streaming for 30 s: refused, \
               TLS or upgrade failure, timeout, or lost before. An upgrade answered 401 (Binance's `-2015`: the \
               API key refused) switches at once. The switch goes through the usual reconnect: what was missed is \
               backfilled or named in a gap record.",
        secret: false,
        apply: |v, b| {
            if let Some(n) = b.int_in::<u32>(v, 1..=100, "") {
                b.cfg.sbe_max_failures = n;
            }
        },
        show: |c, o| o.value(c.sbe_max_failures),
    },
    Var {
        env: "SBE_RETRY_SECS",
        flag: "sbe-retry-secs",
        value_name: "SECS",
        unset: Unset::Default("3600"),
        help: "After falling back to JSON for failures, try SBE again this long after, s; 0: never",
        more: "0 to 604800. The retry is make-before-break: JSON streams until SBE does; if SBE fails again, the \
               lane stays on JSON for another period.",
        secret: false,
        apply: |v, b| {
            if let Some(s) = b.int_in::<u64>(v, 0..=604_800, "") {
                b.cfg.sbe_retry_after = (s > 0).then(|| Duration::from_secs(s));
            }
        },
        show: |c, o| o.value(c.sbe_retry_after.map_or(0, |d| d.as_secs())),
    },
    Var {
        env: "SBE_SCALES_REFRESH_SECS",
        flag: "sbe-scales-refresh-secs",
        value_name: "SECS",
        unset: Unset::Default("3600"),
        help: "Fetch every symbol's price and quantity scale (`exchangeInfo`) again this often, s (`TRANSPORT=sbe`)",
        more: "1 to 86400. Also soon after a trade's decimals do not fit the known scale (`sbe_inexact_decimal`, \
               at most once a minute), and every 30 s at most while a lane lacks scales (it streams JSON until \
               they come, then switches to SBE make-before-break).",
        secret: false,
        apply: |v, b| {
            if let Some(s) = b.int_in::<u64>(v, 1..=86_400, "") {
                b.cfg.sbe_scales_refresh = Duration::from_secs(s);
            }
        },
        show: |c, o| o.value(c.sbe_scales_refresh.as_secs()),
    },
];

#[cfg(test)]
mod tests {
    use super::super::{RawConfig, Transport};

    fn validate(pairs: &[(&str, &str)]) -> Result<super::super::Config, Vec<String>> {
        RawConfig::from_pairs(pairs).validate_with_memory_limit(None).map_err(|e| e.0)
    }

    #[test]
    fn kinds_sbe_lacks_go_over_json_beside_it_and_check_config_says_which() {
        let c = validate(&[("TRANSPORT", "sbe"), ("STREAMS", "trade,aggTrade,depth,kline_1m,bookTicker")]).unwrap();
        assert_eq!(
            c.transport_split().as_deref(),
            Some(
                "TRANSPORT=sbe: over SBE trade,depth,bookTicker; over JSON beside it (no SBE stream) \
                 aggTrade,kline_1m; all over JSON while SBE is unavailable"
            )
        );
        let c = validate(&[("TRANSPORT", "sbe"), ("STREAMS", "aggTrade")]).unwrap();
        assert!(c.transport_split().unwrap().contains("over SBE none; over JSON beside it (no SBE stream) aggTrade"));
        assert_eq!(validate(&[("STREAMS", "trade,aggTrade")]).unwrap().transport_split(), None);
        // depth and depth@100ms are one SBE stream: still refused, alone.
        let e = validate(&[("TRANSPORT", "sbe"), ("STREAMS", "trade,aggTrade,depth,depth@100ms")]).unwrap_err();
        assert_eq!(
            e,
            ["TRANSPORT: `sbe` carries depth and depth@100ms as one stream (SBE `@depth`, every 20 ms); STREAMS may \
              name only one of them"]
        );
    }

    #[test]
    fn sbe_is_asked_for_with_a_key_file_that_is_never_shown() {
        let dir = std::env::temp_dir().join(format!("mf-sbe-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        std::fs::write(&key, "Ed25519KeyXyZ\n").unwrap();
        let path = key.to_str().unwrap();
        let c = validate(&[("TRANSPORT", "SBE"), ("SBE_API_KEY_FILE", path), ("BINANCE_SBE_URL", "ws://127.0.0.1:9")])
            .unwrap();
        assert_eq!((c.transport, c.sbe_api_key.expose(), c.sbe_ws.port), (Transport::Sbe, "Ed25519KeyXyZ", 9));
        let shown = format!("{} {c:?}", c.render());
        assert!(!shown.contains("Ed25519KeyXyZ"), "key leaked: {shown}");
        assert!(shown.contains(&format!("SBE_API_KEY_FILE             {path}")), "{shown}");
        assert!(shown.contains("TRANSPORT                    sbe"), "{shown}");
        assert_eq!(validate(&[]).unwrap().transport, Transport::Json);

        std::fs::write(&key, "two words").unwrap();
        let e = validate(&[("TRANSPORT", "binary"), ("SBE_API_KEY_FILE", path), ("STREAMS", "trade,aggTrade")]);
        assert_eq!(
            e.unwrap_err(),
            [
                "TRANSPORT: `binary` is not json or sbe".to_string(),
                format!(
                    "SBE_API_KEY_FILE: `{path}` holds characters an HTTP header cannot carry (a key is visible ASCII)"
                ),
            ]
        );
        let e = validate(&[
            ("TRANSPORT", "sbe"),
            ("STREAMS", "depth,depth@100ms,aggTrade"),
            ("MAX_STREAMS_PER_CONNECTION", "x"),
        ]);
        let e = e.unwrap_err();
        assert_eq!(e.len(), 2, "every problem at once: {e:?}");
        assert!(e.iter().any(|e| e.contains("STREAMS may name only one of them")), "{e:?}");
        assert!(validate(&[("TRANSPORT", "sbe"), ("STREAMS", "trade,bookTicker,depth@100ms")]).is_ok());
        std::fs::write(&key, "k").unwrap();
        let e = validate(&[("TRANSPORT", "sbe"), ("SBE_API_KEY_FILE", path), ("BINANCE_SBE_URL", "ws://sim.local:9")]);
        assert_eq!(
            e.unwrap_err(),
            ["BINANCE_SBE_URL: `ws://sim.local:9` would carry the SBE API key in clear; use `wss://` (plain `ws://` \
              only to a loopback address)"]
        );
        for local in ["ws://[::1]:9", "ws://localhost:9", "wss://sim.local:9"] {
            assert!(validate(&[("TRANSPORT", "sbe"), ("SBE_API_KEY_FILE", path), ("BINANCE_SBE_URL", local)]).is_ok());
        }
        let e = validate(&[("SBE_API_KEY_FILE", "/nonexistent/key")]).unwrap_err();
        assert_eq!(e, ["SBE_API_KEY_FILE: `/nonexistent/key` cannot be read: entity not found"]);
        // USD-M streams JSON whatever spot does.
        let c = validate(&[("TRANSPORT", "sbe"), ("USDM_SYMBOLS", "btcusdt")]).unwrap();
        assert_eq!(c.usdm_lane().unwrap().transport, Transport::Json);
    }
}
