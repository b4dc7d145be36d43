#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    marketflow_ingestor_fuzz::sbe(data, &mut marketflow_ingestor_fuzz::fuzzing::Stats::default());
});
