//! `BINANCE_WS_URL` / `BINANCE_REST_URL`: `scheme://host[:port][/path]`, checked strictly so that a
//! URL that could never connect (`ws://ho st:80`) is a configuration error, not a reconnect loop.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A parsed `ws://` / `wss://` / `http://` / `https://` endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash (usually empty).
    pub path: String,
}

/// A host name as resolvers take it: labels of 1-63 letters, digits, `-` (not at either end) or
/// `_`, 253 characters in all (RFC 1035 2.3.4, RFC 1123 2.1), and a last label that is not all
/// digits (RFC 3696 2), since `1.2.3` would be read as an IPv4 address. Non-ASCII names must be
/// given in their IDNA (`xn--`) form.
fn check_dns_name(host: &str) -> Result<(), String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if !name.is_ascii() {
        return Err(format!("host `{host}` is not ASCII; give an internationalized name in its `xn--` form"));
    }
    if name.len() > 253 {
        return Err(format!("host `{host}` is longer than 253 characters"));
    }
    for label in name.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "host `{}` is not a DNS name or IP address (labels of 1-63 letters, digits, `-`, `_`)",
                host.escape_debug()
            ));
        }
    }
    if name.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("host `{host}` is neither an IPv4 address nor a DNS name (all-digit last label)"));
    }
    Ok(())
}

/// RFC 3986 `pchar` plus `/`: unreserved, sub-delims, `:`, `@`, and `%XX` escapes.
fn check_path(path: &str) -> Result<(), String> {
    if let Some(i) = path.find('?') {
        return Err(format!("query strings are not supported (`{}`)", &path[i..]));
    }
    if let Some(i) = path.find('#') {
        return Err(format!("fragments are not supported (`{}`)", &path[i..]));
    }
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if !(i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return Err(format!("path `{path}` has a `%` that is not followed by two hex digits"));
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&c)) {
            let ch = path[i..].chars().next().unwrap_or('?');
            return Err(format!("path `{path}` contains {ch:?}; percent-encode it"));
        }
        i += 1;
    }
    Ok(())
}

impl Endpoint {
    /// Parses `scheme://host[:port][/path]`; `schemes` is (plain, tls), e.g. ("ws", "wss").
    pub fn parse(s: &str, schemes: (&str, &str)) -> Result<Endpoint, String> {
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{}` contains {c:?}", s.escape_debug()));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}` has no scheme; expected {}:// or {}://", schemes.0, schemes.1))?;
        let tls = if scheme.eq_ignore_ascii_case(schemes.1) {
            true
        } else if scheme.eq_ignore_ascii_case(schemes.0) {
            false
        } else {
            return Err(format!("scheme `{scheme}` is not {} or {}", schemes.0, schemes.1));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unterminated IPv6 literal")?;
            if h.parse::<Ipv6Addr>().is_err() {
                return Err(format!("`[{h}]` is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| format!("`{p}` after `[{h}]` is not `:port`"))?),
            };
            (h, port)
        } else {
            let (h, p) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            if h.contains(':') {
                return Err(format!("host `{h}`: IPv6 addresses go in brackets, e.g. `[::1]:9443`"));
            }
            if h.is_empty() {
                return Err("empty host".into());
            }
            if h.parse::<Ipv4Addr>().is_err() {
                check_dns_name(h)?;
            }
            (h, p)
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| format!("port `{p}` is not a number 1-65535"))?,
            None if tls => 443,
            None => 80,
        };
        if port == 0 {
            return Err("port 0 is not a valid remote port".into());
        }
        check_path(path)?;
        Ok(Endpoint { tls, host: host.to_string(), port, path: path.to_string() })
    }

    /// `host:port`, bracketing IPv6 literals.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: (&str, &str) = ("ws", "wss");

    #[test]
    fn endpoints_parse_ports_paths_and_ipv6() {
        let e = Endpoint::parse("ws://127.0.0.1:9001/", WS).unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port, e.path.as_str()), (false, "127.0.0.1", 9001, ""));
        let e = Endpoint::parse("wss://[::1]:9443/base", WS).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str(), e.authority()),
            ("::1", 9443, "/base", "[::1]:9443".into())
        );
        let e = Endpoint::parse("wss://[::1]", WS).unwrap();
        assert_eq!(e.port, 443);
        for ok in [
            "wss://stream.binance.com:9443",
            "wss://data-stream.binance.vision/ws",
            "ws://localhost",
            "ws://sim_1.internal.:80/a%20b/c~d",
            "wss://xn--fsqu00a.xn--3lr804guic/",
        ] {
            assert!(Endpoint::parse(ok, WS).is_ok(), "{ok}: {:?}", Endpoint::parse(ok, WS));
        }
        assert!(Endpoint::parse("wss://u:p@host", WS).is_err());
        assert!(Endpoint::parse("wss://:1", WS).is_err());
    }

    #[test]
    fn hosts_and_paths_that_cannot_work_are_refused_by_name() {
        let cases = [
            ("ws://ho st:80", "contains ' '"),
            ("ws://host\t:80", "contains '\\t'"),
            ("ws://a<b:80", "host `a<b` is not a DNS name"),
            ("ws://-a.com", "host `-a.com` is not a DNS name"),
            ("ws://a..com", "host `a..com` is not a DNS name"),
            ("ws://币安.com", "is not ASCII"),
            ("ws://1.2.3", "all-digit last label"),
            ("ws://999.1.1.1", "all-digit last label"),
            ("ws://::1:80", "IPv6 addresses go in brackets"),
            ("ws://[::g]:80", "`[::g]` is not an IPv6 address"),
            ("ws://[::1]x", "is not `:port`"),
            ("ws://h/ws?timeUnit=MICROSECOND", "query strings are not supported (`?timeUnit=MICROSECOND`)"),
            ("ws://h?x", "query strings are not supported"),
            ("ws://h/#frag", "fragments are not supported"),
            ("ws://h/a\"b", "contains '\"'"),
            ("ws://h/a%2", "not followed by two hex digits"),
            ("ws://h/é", "contains 'é'; percent-encode it"),
        ];
        for (url, want) in cases {
            let got = Endpoint::parse(url, WS).unwrap_err();
            assert!(got.contains(want), "{url}: got {got:?}, want {want:?}");
        }
        let long = format!("ws://{}.com", vec!["a".repeat(63); 4].join("."));
        assert!(Endpoint::parse(&long, WS).unwrap_err().contains("longer than 253"));
        assert!(Endpoint::parse(&format!("ws://{}.com", "a".repeat(64)), WS).is_err());
    }
}
