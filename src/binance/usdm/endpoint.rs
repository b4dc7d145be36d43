//! What a configured USD-M WebSocket base URL may be. The connection planner appends each
//! connection's route ([`super::stream::route`]) and `/stream?streams=...` to it, so a base that
//! already ends in a route or in a stream mode makes URLs Binance does not serve, or the retired
//! root path (`.../ws`, `.../stream`: subscriptions acknowledged, nothing delivered, README §9).

use super::stream::{MARKET, PUBLIC};

/// The user-data route: no market data there.
const PRIVATE: &str = "/private";
/// Binance's two stream modes, raw and combined; on the bare host they are the retired root.
const MODES: [&str; 2] = ["/ws", "/stream"];

/// Refuses a base path (as configured, no trailing `/`) whose last segment is a route or a mode.
pub fn check_ws_base(path: &str) -> Result<(), String> {
    let last = path.rfind('/').map_or("", |i| &path[i..]);
    let taken = [PUBLIC, MARKET, PRIVATE].into_iter().chain(MODES).find(|r| r.eq_ignore_ascii_case(last));
    match taken {
        None => Ok(()),
        Some(_) => Err(format!(
            "path `{path}` ends in `{last}`: give the base URL (e.g. wss://fstream.binance.com); each connection's \
             route (`{PUBLIC}`, `{MARKET}`) and `/stream` are added to it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_ending_in_a_route_or_mode_is_refused_and_others_pass() {
        for bad in ["/public", "/market", "/private", "/ws", "/stream", "/proxy/Market", "/x/WS"] {
            let e = check_ws_base(bad).unwrap_err();
            assert!(e.starts_with(&format!("path `{bad}` ends in `/")), "{e}");
        }
        for ok in ["", "/fstream", "/publicx", "/ws-proxy", "/stream/x"] {
            assert_eq!(check_ws_base(ok), Ok(()), "{ok}");
        }
    }
}
