//! Real Binance frames recorded from the live service, for the replay test (`replay.rs`) and any
//! test that wants what Binance really sends rather than its documentation's examples.
//!
//! Two public captures, committed as test data under `tests/e2e/captures/` with their sources and
//! licences (`SOURCE.md`, `LICENSE.*` beside each) and only the files the replay reads (2.5 MB):
//! - hftbacktest (<https://github.com/nkaz001/hftbacktest>, `examples/spot/*_20240808.gz`, MIT,
//!   Copyright (c) 2022 nkaz001): BTCUSDT and ETHUSDT spot, 2024-08-08 23:54 to 2024-08-09 00:00
//!   UTC, `depth@100ms`, `trade` and `bookTicker` on a combined stream, one line per frame
//!   (`<receive ns> <frame>`), the REST `/api/v3/depth?limit=1000` snapshot taken with them inline
//!   as a bare `{"lastUpdateId":..}` line;
//! - cryptofeed (<https://github.com/bmoscon/cryptofeed>, `sample_data/BINANCE.ws.1.0` and
//!   `BINANCE.http.0.0`; "This product includes software developed by Bryant Moscon
//!   (http://www.bryantmoscon.com/)"): NKNUSDT, BLZETH, LRCBTC and RUNEEUR spot, 2021-10-12,
//!   30 s of `depth@100ms`, `bookTicker`, `kline_1m` and `aggTrade` (`<recv s>: <frame>` after a
//!   first line naming the URL), the depth snapshots in the `.http` file (`<url> -> <ts>: <body>`).
//!
//! Neither is published in a package registry (checked: the cryptofeed sdists on PyPI, 1.9.3 to
//! 3.0.1, carry no `sample_data/`; the hftbacktest sdist on PyPI and its crate carry no
//! `examples/spot/`), so a fresh machine, CI included, could not fetch them: they travel with the
//! repository. `BINANCE_CAPTURES_DIR` points the test at another copy. Each file's SHA-256 is
//! pinned: other bytes are another capture, and the test says so rather than checking against it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One capture file: its path under the captures folder and its pinned SHA-256.
pub struct CaptureFile {
    pub path: &'static str,
    pub sha256: &'static str,
}

pub const HFT_BTCUSDT: CaptureFile = CaptureFile {
    path: "hftbacktest/spot_btcusdt_20240808.gz",
    sha256: "5d263f4c5379cfc27379ef0e22779aa33804463d1b69c292e9c0714e31f2e1b4",
};
pub const HFT_ETHUSDT: CaptureFile = CaptureFile {
    path: "hftbacktest/spot_ethusdt_20240808.gz",
    sha256: "179a67651ec90f8d299c033f85df29027315a30a738eae74a1388d560f80a737",
};
pub const CRYPTOFEED_WS: CaptureFile = CaptureFile {
    path: "cryptofeed/BINANCE.ws.1.0",
    sha256: "5ba2e0cc8204e49dff3d4c608dbb1c3cacc06d432d910ccc31f6b94136bfa5d2",
};
pub const CRYPTOFEED_HTTP: CaptureFile = CaptureFile {
    path: "cryptofeed/BINANCE.http.0.0",
    sha256: "f482e6ea64cb2cbbf2ea6d038f509d9587720631f4287747d2edc480e880c21d",
};

/// What a capture holds: the WebSocket frames exactly as received, in order, and the REST depth
/// snapshots taken with them (`(upper-case symbol, body)`).
#[derive(Default)]
pub struct Capture {
    pub frames: Vec<String>,
    pub snapshots: Vec<(String, String)>,
}

/// The captures folder: `BINANCE_CAPTURES_DIR`, else the committed `tests/e2e/captures/`. A folder
/// without the files fails the test: a replay that silently did not run would prove nothing.
pub fn captures_dir() -> PathBuf {
    let dir = std::env::var_os("BINANCE_CAPTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo_root().join("tests/e2e/captures"));
    assert!(
        dir.join(HFT_BTCUSDT.path).is_file(),
        "the recorded Binance captures are missing: {} not under {}",
        HFT_BTCUSDT.path,
        dir.display()
    );
    dir
}

/// The bytes of `file` under `dir`, after checking its SHA-256 (`sha256sum`) and, for `.gz`,
/// decompressed (`gzip -dc`): coreutils and gzip are on every machine the tests run on.
fn read(dir: &Path, file: &CaptureFile) -> String {
    let path = dir.join(file.path);
    let out = Command::new("sha256sum").arg(&path).output().expect("run sha256sum");
    let sum = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sha256sum {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    assert_eq!(sum.split_whitespace().next(), Some(file.sha256), "{} is not the pinned capture", path.display());
    let bytes = if file.path.ends_with(".gz") {
        let out = Command::new("gzip").arg("-dc").arg(&path).output().expect("run gzip");
        assert!(out.status.success(), "gzip -dc {}", path.display());
        out.stdout
    } else {
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    String::from_utf8(bytes).expect("captures are UTF-8 text")
}

/// An hftbacktest day: `<receive ns> <frame>` per line; a bare `{"lastUpdateId"..}` line is the
/// REST snapshot of `symbol`.
pub fn hftbacktest(dir: &Path, file: &CaptureFile, symbol: &str) -> Capture {
    let mut c = Capture::default();
    for line in read(dir, file).lines() {
        let (_, frame) = line.split_once(' ').unwrap_or_else(|| panic!("not `<ns> <frame>`: {line:.80}"));
        if frame.starts_with(r#"{"lastUpdateId""#) {
            c.snapshots.push((symbol.to_string(), frame.to_string()));
        } else {
            c.frames.push(frame.to_string());
        }
    }
    c
}

/// The cryptofeed session: frames from `BINANCE.ws.1.0`, snapshots from `BINANCE.http.0.0`.
pub fn cryptofeed(dir: &Path) -> Capture {
    let mut c = Capture::default();
    let ws = read(dir, &CRYPTOFEED_WS);
    // The first line is the URL the session connected to; blank lines end the file.
    for line in ws.lines().skip(1).filter(|l| !l.is_empty()) {
        let (_, frame) = line.split_once(": ").unwrap_or_else(|| panic!("not `<ts>: <frame>`: {line:.80}"));
        c.frames.push(frame.to_string());
    }
    for line in read(dir, &CRYPTOFEED_HTTP).lines().filter(|l| !l.is_empty()) {
        let (url, rest) = line.split_once(" -> ").expect("`<url> -> <ts>: <body>`");
        let (_, body) = rest.split_once(": ").expect("`<ts>: <body>`");
        let symbol = url.split("symbol=").nth(1).and_then(|s| s.split('&').next()).expect("symbol= in the URL");
        c.snapshots.push((symbol.to_string(), body.to_string()));
    }
    c
}
