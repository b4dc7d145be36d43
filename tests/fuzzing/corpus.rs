//! cargo-fuzz support: the input shape of the payload target and the seed corpus of every target
//! (written by `tests/fuzz.rs`'s ignored `export_corpus`), the SBE decoder's
//! (crates/binance-sbe/fuzz, target `decode`) included as `sbe_decode/`, and the same frames as
//! `sbe/` for the ingester's binary path (fuzz/, target `sbe`).

use std::path::Path;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::{data_of, sbe, seeds, stream_for, ws};

/// A payload-target input for libFuzzer: the stream name, a newline, the payload.
pub fn split_payload_input(data: &[u8]) -> (String, String) {
    let (stream, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    (String::from_utf8_lossy(stream).into_owned(), String::from_utf8_lossy(rest).into_owned())
}

/// Writes the seed corpus of each cargo-fuzz target under `dir/<target>/`; returns the number
/// of files written.
pub fn export_corpus(dir: &Path) -> usize {
    let seeds = seeds::seeds();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut n = 0;
    for target in ["frame", "payload", "websocket", "sbe_decode", "sbe"] {
        std::fs::create_dir_all(dir.join(target)).expect("create the corpus directory");
    }
    let mut write = |target: &str, i: usize, bytes: &[u8]| {
        std::fs::write(dir.join(target).join(format!("seed-{i:04}")), bytes).expect("write a seed");
        n += 1;
    };
    for (i, s) in seeds.iter().enumerate() {
        write("frame", i, s);
        let text = String::from_utf8_lossy(s);
        let data = data_of(&text);
        let stream = stream_for(&mut rng, data);
        write("payload", i, format!("{stream}\n{data}").as_bytes());
        write("websocket", i, &ws::build(&mut rng, s).wire);
    }
    for (i, f) in sbe::seeds().iter().enumerate() {
        write("sbe_decode", i, f);
        write("sbe", i, f);
    }
    n
}
