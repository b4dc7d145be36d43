#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = marketflow_ingestor::binance::wire::parse_frame(data);
});
