//! A coverage-less, well-seeded mutational fuzzer for the frame parser, the record parser and
//! encoder, and the WebSocket frame decoder in front of them; it runs on the stable toolchain.
//!
//! Used by tests/fuzz.rs (a short fixed-seed pass in `cargo test`, the long campaign run by
//! `scripts/fuzz.sh`) and by the cargo-fuzz targets in fuzz/ (which include this module). Every
//! input goes through every target (see [`targets`] and [`ws`] for the oracles). A panic, or an
//! oracle's assertion, is caught, counted by location, and the input that caused it is saved
//! under `fuzz/crashes/` with a note on how to replay it. Runs are reproducible: the seed and
//! the number of inputs determine every input.

// Each includer uses a different part of the harness.
#![allow(dead_code)]

pub mod corpus;
pub mod mutate;
pub mod payload;
pub mod sbe;
pub mod seeds;
pub mod targets;
pub mod usdm;
pub mod ws;

// Each includer uses one of the two.
#[allow(unused_imports)]
pub use corpus::{export_corpus, split_payload_input};
pub(crate) use payload::{data_of, stream_for};

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Accepted and rejected inputs of one target, by outcome.
#[derive(Default, Debug)]
pub struct Tally {
    pub accepted: u64,
    pub rejected: u64,
    pub by: BTreeMap<&'static str, u64>,
}

impl Tally {
    pub fn accept(&mut self, how: &'static str) {
        self.accepted += 1;
        *self.by.entry(how).or_default() += 1;
    }
    pub fn reject(&mut self, why: &'static str) {
        self.rejected += 1;
        *self.by.entry(why).or_default() += 1;
    }
}

/// A panic site (file:line:column) and what was seen there.
#[derive(Debug)]
pub struct PanicSite {
    pub count: u64,
    pub message: String,
    pub targets: BTreeMap<&'static str, u64>,
    pub saved: Vec<PathBuf>,
}

#[derive(Default, Debug)]
pub struct Stats {
    pub inputs: u64,
    pub non_utf8_inputs: u64,
    /// Target (a), parse: market/control/error/shutdown vs the `ParseError` reasons.
    pub frame: Tally,
    /// Target (a), encode of every market record: ok vs the `RecordError` reasons.
    pub encode: Tally,
    /// Target (b).
    pub payload: Tally,
    /// Target (a) as a USD-M frame: parse, then encode (`usdm.rs`).
    pub usdm: Tally,
    /// Target (c): messages read, by type (accepted), and how each stream ended (rejected).
    pub ws: Tally,
    /// Target (d), SBE (`sbe.rs`): frames decoded, by message, or refused, by reason; and the
    /// trade records the binary path wrote from them (each checked).
    pub sbe: Tally,
    pub sbe_records: u64,
    pub ws_streams: u64,
    /// Frames sonic-rs accepted that serde_json calls invalid JSON (not a failure: noted).
    pub lenient: u64,
    pub lenient_examples: Vec<(&'static str, String, Vec<u8>)>,
    /// Parser inputs skipped for nesting deeper than `Config::max_depth`.
    pub too_deep: u64,
    pub panics: BTreeMap<String, PanicSite>,
}

impl Stats {
    pub fn note_lenient(&mut self, target: &'static str, why: String, text: &[u8]) {
        self.lenient += 1;
        if self.lenient_examples.len() < 8 {
            self.lenient_examples.push((target, why, text.to_vec()));
        }
    }

    pub fn panic_count(&self) -> u64 {
        self.panics.values().map(|p| p.count).sum()
    }
}

// ---- catching panics -------------------------------------------------------------------------

/// What the current thread is feeding to which target (read by the panic hook).
#[derive(Default)]
struct Current {
    active: bool,
    target: &'static str,
    input: Vec<u8>,
    /// The stream name of the payload target.
    stream: String,
    /// For the websocket target: the reader's chunking.
    chunking: Option<(u64, usize)>,
    seed: u64,
    iteration: u64,
}

struct Caught {
    location: String,
    message: String,
    saved: Option<PathBuf>,
}

thread_local! {
    static CURRENT: RefCell<Current> = RefCell::new(Current::default());
    static CAUGHT: RefCell<Option<Caught>> = const { RefCell::new(None) };
    /// Crash files already written per panic site (a few per site are enough).
    static SAVED_PER_SITE: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

/// Where crash inputs go.
pub fn crash_dir() -> PathBuf {
    std::env::var_os("FUZZ_CRASH_DIR").map_or_else(|| seeds::repo_root().join("fuzz/crashes"), PathBuf::from)
}

fn save_crash(c: &Current, location: &str, message: &str) -> Option<PathBuf> {
    let dir = crash_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let name = format!("{}-seed{}-input{}", c.target, c.seed, c.iteration);
    let bin = dir.join(format!("{name}.bin"));
    std::fs::write(&bin, &c.input).ok()?;
    if c.target == "payload" {
        std::fs::write(dir.join(format!("{name}.stream")), &c.stream).ok()?;
    }
    let mut note = format!(
        "target: {}\npanic: {message}\nat: {location}\nseed {} input {}\ninput ({} bytes, lossy): {}\n",
        c.target,
        c.seed,
        c.iteration,
        c.input.len(),
        String::from_utf8_lossy(&c.input[..c.input.len().min(4096)])
    );
    if c.target == "payload" {
        let _ = writeln!(note, "stream: {:?}", c.stream);
    }
    if let Some((seed, max)) = c.chunking {
        let _ = writeln!(note, "chunking: seed {seed} max {max}");
    }
    let _ =
        writeln!(note, "replay: FUZZ_REPLAY={} cargo test --test fuzz replay -- --ignored --nocapture", bin.display());
    std::fs::write(dir.join(format!("{name}.txt")), note).ok()?;
    Some(bin)
}

/// Installs (once) a panic hook that, on a thread feeding a target, saves the input (at most
/// three files per panic site) and records the panic for [`guard`]; other panics go to the
/// previous hook untouched. The first panic at each site is also printed.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let fuzzing = CURRENT.with(|c| c.try_borrow().map(|c| c.active).unwrap_or(false));
            if !fuzzing {
                return previous(info);
            }
            let location = info.location().map_or_else(|| "?".to_string(), |l| l.to_string());
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                s.to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "(non-string panic payload)".to_string()
            };
            let n = SAVED_PER_SITE.with(|m| {
                let mut m = m.borrow_mut();
                let n = m.entry(location.clone()).or_default();
                *n += 1;
                *n
            });
            let saved = if n <= 3 { CURRENT.with(|c| save_crash(&c.borrow(), &location, &message)) } else { None };
            if n == 1 {
                previous(info);
                if let Some(p) = &saved {
                    eprintln!("fuzz: input saved to {}", p.display());
                }
            }
            CAUGHT.with(|c| *c.borrow_mut() = Some(Caught { location, message, saved }));
        }));
    });
}

/// Runs one target on one input, catching and recording any panic. `false` if it panicked.
fn guard<R>(
    st: &mut Stats,
    target: &'static str,
    input: &[u8],
    note: impl FnOnce(&mut Current),
    f: impl FnOnce(&mut Stats) -> R,
) -> Option<R> {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        c.active = true;
        c.target = target;
        c.input.clear();
        c.input.extend_from_slice(input);
        c.stream.clear();
        c.chunking = None;
        note(&mut c);
    });
    abort_guard::arm(input);
    let res = panic::catch_unwind(AssertUnwindSafe(|| f(st)));
    abort_guard::disarm();
    CURRENT.with(|c| c.borrow_mut().active = false);
    match res {
        Ok(r) => Some(r),
        Err(_) => {
            let caught = CAUGHT.with(|c| c.borrow_mut().take());
            let (location, message, saved) =
                caught.map_or(("?".into(), "?".into(), None), |c| (c.location, c.message, c.saved));
            let site = st.panics.entry(location).or_insert_with(|| PanicSite {
                count: 0,
                message,
                targets: BTreeMap::new(),
                saved: Vec::new(),
            });
            site.count += 1;
            *site.targets.entry(target).or_default() += 1;
            site.saved.extend(saved);
            None
        }
    }
}

/// Saves the current input if the process aborts (a stack overflow or an allocation failure
/// is not a panic): a SIGABRT handler writes it to `fuzz/crashes/abort-<pid>.bin` with
/// async-signal-safe calls only. Armed by the long campaign, not by `cargo test`.
pub mod abort_guard {
    use std::ffi::CString;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    static ENABLED: AtomicBool = AtomicBool::new(false);
    static PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
    static LEN: AtomicUsize = AtomicUsize::new(0);
    static PATH: OnceLock<CString> = OnceLock::new();

    extern "C" fn on_abort(_sig: libc::c_int) {
        let (p, n) = (PTR.load(Ordering::SeqCst), LEN.load(Ordering::SeqCst));
        let Some(path) = PATH.get() else { return };
        if p.is_null() {
            return;
        }
        // SAFETY: open/write/close are async-signal-safe; the pointer and length describe the
        // input slice the target is running on (disarmed before that slice is released).
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
            if fd >= 0 {
                let _ = libc::write(fd, p as *const libc::c_void, n);
                libc::close(fd);
            }
        }
    }

    pub fn enable() {
        let dir = super::crash_dir();
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("abort-{}.bin", std::process::id()));
        let _ = PATH.set(CString::new(path.to_string_lossy().into_owned()).expect("no NUL in the path"));
        // SAFETY: installs a handler that only uses async-signal-safe calls.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_abort as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGABRT, &sa, std::ptr::null_mut());
        }
        ENABLED.store(true, Ordering::SeqCst);
        eprintln!("fuzz: an abort (stack overflow, OOM) saves its input to {}", path.display());
    }

    pub(super) fn arm(input: &[u8]) {
        if ENABLED.load(Ordering::Relaxed) {
            LEN.store(input.len(), Ordering::SeqCst);
            PTR.store(input.as_ptr() as *mut u8, Ordering::SeqCst);
        }
    }

    pub(super) fn disarm() {
        if ENABLED.load(Ordering::Relaxed) {
            PTR.store(std::ptr::null_mut(), Ordering::SeqCst);
        }
    }
}

// ---- the campaign ----------------------------------------------------------------------------

pub struct Config {
    pub seed: u64,
    pub inputs: u64,
    /// Feed inputs that are not UTF-8 to `parse_frame` as they are; off: they are converted
    /// lossily first (what tungstenite delivers is always UTF-8). Before 8c3082f sonic-rs
    /// tripped a `debug_assert!` on them (tests/fuzz_regressions.rs).
    pub raw_non_utf8: bool,
    /// Inputs nested deeper than this are not parsed (0: no limit): see `targets::MAX_DEPTH`.
    pub max_depth: usize,
    /// Print a progress line this often (to stderr).
    pub progress: Option<Duration>,
}

/// Runs the campaign: `cfg.inputs` inputs, each through every target.
pub fn run(cfg: &Config) -> Stats {
    install_panic_hook();
    targets::set_max_depth(cfg.max_depth);
    let seeds = seeds::seeds();
    let mut m = mutate::Mutator::new(SmallRng::seed_from_u64(cfg.seed), seeds);
    if cfg.max_depth > 0 {
        m.shallow_nesting = cfg.max_depth;
    }
    // A second stream of randomness for the wrappers, so the mutator's sequence does not depend
    // on what the targets did.
    let mut rng = SmallRng::seed_from_u64(cfg.seed ^ 0x5eed_f00d_cafe_d00d);
    let mut st = Stats::default();
    let mut sbe = sbe::SbeFuzzer::new(cfg.seed);
    let mut input = Vec::new();
    let mut seen: HashMap<[&'static str; 5], u32> = HashMap::new();
    let started = Instant::now();
    let mut last_progress = started;
    for i in 0..cfg.inputs {
        m.next(&mut input);
        st.inputs += 1;
        let recv_ns = match rng.random_range(0..16) {
            0 => 0,
            1 => u64::MAX,
            2 => rng.random(),
            _ => 1_700_000_000_000_000_000 + i,
        };
        let utf8 = std::str::from_utf8(&input).is_ok();
        if !utf8 {
            st.non_utf8_inputs += 1;
        }
        let lossy;
        let text: &[u8] = if utf8 || cfg.raw_non_utf8 {
            &input
        } else {
            lossy = String::from_utf8_lossy(&input).into_owned();
            lossy.as_bytes()
        };
        let note = |c: &mut Current| {
            c.seed = cfg.seed;
            c.iteration = i;
        };

        // (a) the frame parser and the record encoder.
        let (parsed, encoded) =
            guard(&mut st, "frame", text, note, |st| targets::frame(text, recv_ns, st)).unwrap_or(("panic", "panic"));

        // (b) the payload parser with a (mutated) stream name.
        let as_str = String::from_utf8_lossy(&input);
        let data = data_of(&as_str);
        let stream = stream_for(&mut rng, data);
        let payload = guard(
            &mut st,
            "payload",
            data.as_bytes(),
            |c| {
                note(c);
                c.stream.push_str(&stream);
            },
            |st| targets::payload(&stream, data, recv_ns, st).0,
        )
        .unwrap_or("panic");

        // (c) the WebSocket decoder, every text message back through (a).
        let case = ws::build(&mut rng, &input);
        st.ws_streams += 1;
        let chunking = (case.chunk_seed, case.max_chunk);
        let wsl = guard(
            &mut st,
            "websocket",
            &case.wire,
            |c| {
                note(c);
                c.chunking = Some(chunking);
            },
            |st| {
                ws::websocket(&case, st, &mut |t, st| {
                    targets::frame(t, recv_ns, st);
                })
            },
        )
        .unwrap_or("panic");

        // (d) a binary input of the SBE target's own mutator.
        sbe.step(&mut st, note);

        // Keep inputs whose combination of outcomes is still rare.
        let sig = [parsed, encoded, payload, wsl, if utf8 { "utf8" } else { "bytes" }];
        let n = seen.entry(sig).or_default();
        *n += 1;
        // Inputs over the nesting limit are not kept: their descendants would be skipped too.
        if (*n <= 16 || (parsed == "market" && m.rng.random_ratio(1, 256))) && parsed != "too_deep" {
            m.keep(&input);
        }

        if let Some(every) = cfg.progress {
            if last_progress.elapsed() >= every {
                last_progress = Instant::now();
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "fuzz: {} inputs, {:.0}/s, pool {}, {} panics",
                    i + 1,
                    (i + 1) as f64 / secs,
                    m.pool_len(),
                    st.panic_count()
                );
            }
        }
    }
    st
}

/// The human-readable summary the campaign prints.
pub fn summary(cfg: &Config, st: &Stats, elapsed: Duration) -> String {
    let mut s = String::new();
    let secs = elapsed.as_secs_f64();
    let _ = writeln!(
        s,
        "fuzz: seed {}, {} inputs in {:.1} s = {:.0} inputs/s ({} not UTF-8, fed {})",
        cfg.seed,
        st.inputs,
        secs,
        st.inputs as f64 / secs.max(1e-9),
        st.non_utf8_inputs,
        if cfg.raw_non_utf8 { "raw" } else { "lossily converted" }
    );
    let row = |s: &mut String, name: &str, t: &Tally, unit: &str| {
        let detail: Vec<String> = t.by.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            s,
            "  {name:<22} accepted {:>10}  rejected {:>10}  ({unit}: {})",
            t.accepted,
            t.rejected,
            detail.join(", ")
        );
    };
    row(&mut s, "frame parser", &st.frame, "frames");
    row(&mut s, "record encoder", &st.encode, "market records");
    row(&mut s, "payload parser", &st.payload, "payloads");
    row(&mut s, "websocket decoder", &st.ws, "messages read / how streams ended");
    row(&mut s, "USD-M parser + encoder", &st.usdm, "frames, then records");
    row(&mut s, "SBE decoder + path", &st.sbe, &format!("frames; {} trade records checked", st.sbe_records));
    let _ = writeln!(s, "  websocket streams: {}", st.ws_streams);
    let _ = writeln!(
        s,
        "  parser inputs skipped for nesting deeper than {}: {}",
        if cfg.max_depth == 0 { "(no limit)".to_string() } else { cfg.max_depth.to_string() },
        st.too_deep
    );
    let _ = writeln!(s, "  sonic-rs accepted, serde_json rejected: {}", st.lenient);
    for (t, why, ex) in &st.lenient_examples {
        let _ = writeln!(s, "    {t} (serde_json: {why}): {:?}", String::from_utf8_lossy(&ex[..ex.len().min(300)]));
    }
    if st.panics.is_empty() {
        let _ = writeln!(s, "0 panics");
    } else {
        let _ = writeln!(s, "{} panics at {} sites:", st.panic_count(), st.panics.len());
        for (loc, p) in &st.panics {
            let _ = writeln!(s, "  {} x at {loc} ({:?}): {}", p.count, p.targets, p.message);
            for f in &p.saved {
                let _ = writeln!(s, "    input: {}", f.display());
            }
        }
    }
    s
}

/// Replays a saved input (`<target>-...bin`, with its `.stream` for the payload target) once,
/// without catching anything: the panic surfaces with its backtrace.
pub fn replay(path: &Path) {
    let name = path.file_name().and_then(|n| n.to_str()).expect("a file name");
    let input = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut st = Stats::default();
    let recv_ns = 1_700_000_000_000_000_000;
    if name.starts_with("frame") || name.starts_with("abort") {
        targets::frame(&input, recv_ns, &mut st);
    } else if name.starts_with("payload") {
        let stream = std::fs::read_to_string(path.with_extension("stream")).expect("the .stream file next to it");
        let data = String::from_utf8(input).expect("payload inputs are UTF-8");
        targets::payload(&stream, &data, recv_ns, &mut st);
    } else if name.starts_with("sbe") {
        sbe::SbeFuzzer::new(0).replay(&input, &mut st);
    } else if name.starts_with("websocket") {
        let note = std::fs::read_to_string(path.with_extension("txt")).unwrap_or_default();
        let (seed, max) = note
            .lines()
            .find_map(|l| l.strip_prefix("chunking: seed "))
            .and_then(|l| l.split_once(" max "))
            .map_or((0, 4096), |(s, m)| (s.parse().unwrap_or(0), m.parse().unwrap_or(4096)));
        ws::websocket(&ws::WsCase::raw(input, seed, max), &mut st, &mut |t, st| {
            targets::frame(t, recv_ns, st);
        });
    } else {
        panic!("unknown target for {name}");
    }
    println!("replayed {name}: no panic");
}
