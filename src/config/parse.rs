//! Parsers of single settings, each pushing its problems onto the shared list.

use std::path::Path;

use super::{CorePin, Secret};
use crate::binance::stream::StreamKind;
use crate::binance::symbol;

/// Largest password file read: a connection string is a few hundred bytes.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 64 * 1024;

pub(super) fn parse_num<T: std::str::FromStr>(name: &str, v: &str, errs: &mut Vec<String>) -> Option<T> {
    match v.trim().parse::<T>() {
        Ok(n) => Some(n),
        Err(_) => {
            errs.push(format!("{name}: `{}` is not a valid non-negative integer", v.trim()));
            None
        }
    }
}

pub(super) fn parse_switch(name: &str, v: &str, errs: &mut Vec<String>) -> bool {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => true,
        "off" | "false" | "0" | "no" => false,
        other => {
            errs.push(format!("{name}: `{other}` is not on or off"));
            true
        }
    }
}

pub(super) fn parse_core(name: &str, v: &str, errs: &mut Vec<String>) -> CorePin {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => CorePin::Auto,
        "none" | "off" => CorePin::None,
        n => match n.parse::<usize>() {
            Ok(c) => CorePin::Core(c),
            Err(_) => {
                errs.push(format!("{name}: `{n}` is not a CPU id, `auto` or `none`"));
                CorePin::Auto
            }
        },
    }
}

pub(super) fn check_topic(var: &str, t: &str, errs: &mut Vec<String>) {
    // Kafka's own rule (kafka.common.Topic): 1-249 chars of [a-zA-Z0-9._-].
    let ok = !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !ok {
        errs.push(format!("{var}: `{t}` is not a valid Kafka topic name (1-249 of [a-zA-Z0-9._-])"));
    }
}

pub(super) fn parse_symbols(v: &str, errs: &mut Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in v.split(',') {
        let s = raw.trim();
        if s.is_empty() {
            continue;
        }
        // Binance's own grammar: a symbol it refuses would break the connection carrying it.
        if let Err(e) = symbol::check(s) {
            errs.push(format!("SYMBOLS: `{}` {e}", s.escape_debug()));
            continue;
        }
        // Stream names carry symbols in lower case.
        let lower = s.to_lowercase();
        if out.contains(&lower) {
            errs.push(format!("SYMBOLS: `{s}` is listed twice"));
            continue;
        }
        out.push(lower);
    }
    if out.is_empty() && !errs.iter().any(|e| e.starts_with("SYMBOLS")) {
        errs.push("SYMBOLS: no symbol given (e.g. btcusdt,ethusdt)".into());
    }
    if out.len() > u16::MAX as usize {
        errs.push(format!("SYMBOLS: {} symbols is more than one process supports ({})", out.len(), u16::MAX));
    }
    out
}

pub(super) fn parse_streams(v: &str, errs: &mut Vec<String>) -> Vec<StreamKind> {
    let mut out = Vec::new();
    for raw in v.split(',') {
        let s = raw.trim();
        if s.is_empty() {
            continue;
        }
        match s.parse::<StreamKind>() {
            Ok(k) if out.contains(&k) => errs.push(format!("STREAMS: `{s}` is listed twice")),
            Ok(k) => out.push(k),
            Err(e) => errs.push(format!("STREAMS: {e}")),
        }
    }
    if out.is_empty() && !errs.iter().any(|e| e.starts_with("STREAMS")) {
        errs.push("STREAMS: no stream kind given (e.g. trade,aggTrade)".into());
    }
    out
}

/// The password in `path`: a regular file of at most [`MAX_PASSWORD_FILE_BYTES`], UTF-8, one
/// trailing newline dropped (the CSI driver writes the secret as-is; `echo` adds the newline).
pub(super) fn read_password_file(path: &str, errs: &mut Vec<String>) -> Option<Secret> {
    // Say which file and why, never what was in it.
    let bytes = match crate::small_file::read(Path::new(path), MAX_PASSWORD_FILE_BYTES) {
        Ok(b) => b,
        Err(e) => {
            errs.push(format!("KAFKA_PASSWORD_FILE: `{path}` {e}"));
            return None;
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        errs.push(format!("KAFKA_PASSWORD_FILE: `{path}` is not UTF-8 text"));
        return None;
    };
    let pw = text.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        errs.push(format!("KAFKA_PASSWORD_FILE: `{path}` is empty"));
        return None;
    }
    Some(Secret::new(pw))
}

/// `TLS_CA_FILE`, read and parsed now, whatever will use TLS (WebSocket, REST or both).
pub(super) fn check_ca_file(path: &Path, errs: &mut Vec<String>) {
    if let Err(e) = crate::tls::load_ca_file(path) {
        errs.push(format!("TLS_CA_FILE: {e}"));
    }
}
