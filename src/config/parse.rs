//! Parsers of single values, each pushing its problems under the variable being parsed.

use std::path::{Path, PathBuf};

use super::build::Problems;
use super::{CorePin, Secret};
use crate::binance::stream::StreamKind;
use crate::binance::symbol;

/// Largest password file read: a connection string is a few hundred bytes.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 64 * 1024;

/// The trimmed value, unless empty (an empty variable counts as unset).
pub(super) fn non_empty(v: &str) -> Option<&str> {
    let v = v.trim();
    (!v.is_empty()).then_some(v)
}

pub(super) fn core(v: &str, errs: &mut Problems) -> CorePin {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => CorePin::Auto,
        "none" | "off" => CorePin::None,
        n => match n.parse::<usize>() {
            Ok(c) => CorePin::Core(c),
            Err(_) => {
                errs.push(format_args!("`{n}` is not a CPU id, `auto` or `none`"));
                CorePin::Auto
            }
        },
    }
}

/// `host:port[,host:port...]`, trimmed.
pub(super) fn brokers(v: &str, errs: &mut Problems) -> String {
    let v = v.trim();
    if v.is_empty() {
        errs.push("must not be empty (host:port[,host:port...])");
        return String::new();
    }
    for b in v.split(',').map(str::trim) {
        let ok = b.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            errs.push(format_args!("`{b}` is not host:port"));
        }
    }
    v.to_string()
}

pub(super) fn check_topic(t: &str, errs: &mut Problems) {
    // Kafka's own rule (kafka.common.Topic): 1-249 chars of [a-zA-Z0-9._-].
    let ok = !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !ok {
        errs.push(format_args!("`{t}` is not a valid Kafka topic name (1-249 of [a-zA-Z0-9._-])"));
    }
}

/// An IP address, trimmed.
pub(super) fn ip(v: &str, errs: &mut Problems) -> String {
    let v = v.trim();
    if v.parse::<std::net::IpAddr>().is_err() {
        errs.push(format_args!("`{v}` is not an IP address"));
    }
    v.to_string()
}

pub(super) fn symbols(v: &str, errs: &mut Problems) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in v.split(',') {
        let s = raw.trim();
        if s.is_empty() {
            continue;
        }
        // Binance's own grammar: a symbol it refuses would break the connection carrying it.
        if let Err(e) = symbol::check(s) {
            errs.push(format_args!("`{}` {e}", s.escape_debug()));
            continue;
        }
        // Stream names carry symbols in lower case.
        let lower = s.to_lowercase();
        // The metrics' label for a lane's aggregate (`metrics::ALL_SYMBOLS`; config sits below
        // metrics, so the text is repeated, and tests/metrics_scale.rs keeps the two equal).
        if lower == "_all" {
            errs.push(format_args!("`{s}` is reserved: /metrics names the total over all symbols so"));
            continue;
        }
        if out.contains(&lower) {
            errs.push(format_args!("`{s}` is listed twice"));
            continue;
        }
        out.push(lower);
    }
    // Empty is allowed here: one market's symbols may be, not both (`Build::finish`).
    if out.len() > u16::MAX as usize {
        errs.push(format_args!("{} symbols is more than one process supports ({})", out.len(), u16::MAX));
    }
    out
}

/// Spot's stream kinds.
pub(super) fn streams(v: &str, errs: &mut Problems) -> Vec<StreamKind> {
    streams_of(v, |s| s.parse::<StreamKind>(), errs)
}

/// Stream kinds as one market's `parse` reads them.
pub(super) fn streams_of(
    v: &str,
    parse: fn(&str) -> Result<StreamKind, String>,
    errs: &mut Problems,
) -> Vec<StreamKind> {
    let mut out = Vec::new();
    let mut refused = false;
    for raw in v.split(',') {
        let s = raw.trim();
        if s.is_empty() {
            continue;
        }
        match parse(s) {
            Ok(k) if out.contains(&k) => {
                errs.push(format_args!("`{s}` is listed twice"));
                refused = true;
            }
            Ok(k) => out.push(k),
            Err(e) => {
                errs.push(e);
                refused = true;
            }
        }
    }
    if out.is_empty() && !refused {
        errs.push("no stream kind given (e.g. trade,aggTrade)");
    }
    out
}

/// The password in `path`: a regular file of at most [`MAX_PASSWORD_FILE_BYTES`], UTF-8, one
/// trailing newline dropped (the CSI driver writes the secret as-is; `echo` adds the newline).
pub(super) fn password_file(path: &str, errs: &mut Problems) -> Option<Secret> {
    secret_file(path, MAX_PASSWORD_FILE_BYTES, errs)
}

/// The secret in `path` (a password, an API key): as [`password_file`], at most `max` bytes.
pub(super) fn secret_file(path: &str, max: u64, errs: &mut Problems) -> Option<Secret> {
    // Say which file and why, never what was in it.
    let bytes = match crate::small_file::read(Path::new(path), max) {
        Ok(b) => b,
        Err(e) => {
            errs.push(format_args!("`{path}` {e}"));
            return None;
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        errs.push(format_args!("`{path}` is not UTF-8 text"));
        return None;
    };
    let pw = text.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        errs.push(format_args!("`{path}` is empty"));
        return None;
    }
    Some(Secret::new(pw))
}

/// `TLS_CA_FILE`, read and parsed now, whatever will use TLS (WebSocket, REST or both).
pub(super) fn ca_file(v: &str, errs: &mut Problems) -> Option<PathBuf> {
    let path = PathBuf::from(non_empty(v)?);
    if let Err(e) = crate::tls::load_ca_file(&path) {
        errs.push(e);
    }
    Some(path)
}
