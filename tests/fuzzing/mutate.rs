//! The mutator: byte-level havoc (bit flips, interesting bytes, multi-byte and broken UTF-8,
//! deletion, truncation, duplication, splicing) and JSON-aware edits (numbers swapped for
//! extreme values, strings replaced by escaped, non-ASCII or boundary-length text, values
//! replaced by other types, keys duplicated or dropped, deep nesting). Deterministic for a seed.

use rand::rngs::SmallRng;
use rand::RngExt;

/// Inputs never grow beyond this (deep nesting needs room; most inputs stay under 1 KiB).
pub const MAX_LEN: usize = 128 * 1024;
/// Pool entries beyond the seeds, kept when they show behaviour not seen often.
const POOL_EXTRA: usize = 8192;

const INTERESTING_BYTES: &[u8] = &[
    b'"', b'\\', b'{', b'}', b'[', b']', b':', b',', b'-', b'.', b'e', b'E', b'+', b'0', b'1', b'9', 0x00, 0x01, 0x1f,
    0x7f, 0x80, 0xc0, 0xed, 0xff, b' ', b'\n', b'\t', b'@', b'/', b'u', b'n', b't', b'f',
];

/// Valid and broken UTF-8: 2-, 3- and 4-byte characters, the BOM, U+2028, an overlong NUL, a
/// surrogate, a code point above U+10FFFF, truncated sequences, a lone continuation byte.
const UTF8_SNIPPETS: &[&[u8]] = &[
    "é".as_bytes(),
    "€".as_bytes(),
    "😀".as_bytes(),
    "币".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{2028}".as_bytes(),
    "\u{85}".as_bytes(),
    "١".as_bytes(),
    &[0xc0, 0x80],
    &[0xed, 0xa0, 0x80],
    &[0xf4, 0x90, 0x80, 0x80],
    &[0xe2, 0x82],
    &[0xf0, 0x9f, 0x98],
    &[0x80],
    &[0xfe],
];

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "00",
    "01",
    "-01",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "18446744073710",
    "-18446744073710",
    "99999999999999999999999999999999",
    "4294967295",
    "4294967296",
    "1e308",
    "1e309",
    "-1e400",
    "1.5",
    "0.1",
    "2.0",
    "1E2",
    "1e-7",
    "1.",
    ".5",
    "-",
    "--1",
    "1e",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x10",
    "1_000",
    "1672515782136",
    "0.00000001",
    "123456789012345678901234567890.123",
];

/// Replacement string contents (already JSON-escaped where they contain escapes).
const STRINGS: &[&str] = &[
    "",
    "\\\"",
    "\\\\",
    "\\/",
    "\\u0000",
    "\\u001f",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\\u0042NBBTC",
    "BNB\\u0042TC",
    "0.\\u0031",
    "\\n",
    "\\x",
    "\\u12",
    "\\",
    "币安人生",
    "币安人生USDT",
    "é",
    "😀",
    "١٢",
    "٣.٤",
    "\u{2028}",
    "\u{feff}1",
    "\u{85}",
    "0.001",
    "-1.5",
    "-0",
    "1e5",
    "+1",
    " 1",
    "1 ",
    ".5",
    "5.",
    "1.2.3",
    "NaN",
    "BNBBTC",
    "bnbbtc",
    "BTCUSDT",
    "btcusdt",
    "BNBUSDT",
    "trade",
    "aggTrade",
    "kline",
    "depthUpdate",
    "serverShutdown",
    "!serverShutdown",
    "bnbbtc@trade",
    "bnbbtc@aggTrade",
    "bnbbtc@kline_1M",
    "bnbbtc@depth@100ms",
    "bnbusdt@bookTicker",
    "bnbbtc@depth",
    "bnbbtc@",
    "@trade",
    "1m",
    "1M",
    "1s",
    "3d",
    "2m",
    "null",
    "true",
    "99999999999999999999999999999999999999999999999999999999999999999",
    "9999999999999999999999999999999999999999999999999999999999999999",
    "0.00000000000000000000000000000000000000000000000000000000000001",
    "BNBBTCBNBBTCBNBBTCBNBBTCBNBBTCBNBBTCBNBB",
    "BNBBTCBNBBTCBNBBTCBNBBTCBNBBTCBNBBTCBNBBT",
];

/// Values of every JSON type, to put where another type is expected.
const VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.0",
    "\"\"",
    "\"1\"",
    "[]",
    "{}",
    "[[]]",
    "[1,2]",
    "[[1,2]]",
    "[\"1\",\"2\"]",
    "[[\"1\",\"2\"]]",
    "[[\"1\"]]",
    "[[\"1\",\"2\",\"3\"]]",
    "[[\"0.1\",\"2\"],[\"0.2\",\"3\"]]",
    "{\"a\":1}",
    "{\"t\":1}",
    "[[\"1\",\"2\"],]",
    "[,]",
];

/// Tokens worth inserting anywhere.
const DICT: &[&str] = &[
    "\"stream\":",
    "\"data\":",
    "\"result\":",
    "\"id\":",
    "\"code\":",
    "\"msg\":",
    "\"e\":",
    "\"E\":",
    "\"s\":",
    "\"k\":",
    "\"b\":",
    "\"a\":",
    "\"stream\":\"bnbbtc@trade\",",
    "\"data\":{},",
    "\"result\":null,",
    "\"id\":1,",
    "\"code\":2,",
    "\"msg\":\"x\",",
    "@trade",
    "@kline_1m",
    "@depth@100ms",
    "!serverShutdown",
    "null",
    "true",
    "false",
    "[",
    "]",
    "{",
    "}",
    ":",
    ",",
    "\"\"",
    "\\u0000",
    "\\ud800",
    "\\\"",
    "\\\\",
    "1e400",
    "-0",
    "/*",
    "//",
    "\u{feff}",
];

/// Nesting depths: around sonic-rs's and serde_json's limits (128), and beyond.
const NEST_DEPTHS: &[usize] = &[2, 3, 8, 16, 24, 31, 32, 33, 64, 127, 128, 129, 200, 255, 256, 1000, 4096, 20000];
const STRING_LENS: &[usize] = &[0, 1, 2, 39, 40, 41, 63, 64, 65, 127, 128, 129, 159, 160, 161, 199, 200, 201, 255, 256];

/// Byte ranges `start..end` of tokens.
type Spans = Vec<(usize, usize)>;

/// Spans of string contents (between the quotes) and of number-like tokens outside strings, in
/// the first 16 KiB.
fn scan(input: &[u8]) -> (Spans, Spans) {
    let (mut strings, mut numbers) = (Vec::new(), Vec::new());
    let input = &input[..input.len().min(16 * 1024)];
    let mut i = 0;
    while i < input.len() && strings.len() + numbers.len() < 512 {
        let b = input[i];
        if b == b'"' {
            let start = i + 1;
            i += 1;
            while i < input.len() && input[i] != b'"' {
                if input[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            let end = i.min(input.len());
            strings.push((start, end));
            i += 1;
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < input.len() && (input[i].is_ascii_digit() || b".eE+-".contains(&input[i])) {
                i += 1;
            }
            numbers.push((start, i));
        } else {
            i += 1;
        }
    }
    (strings, numbers)
}

/// End (exclusive) of the JSON value starting at `start`: the next `,`, `}` or `]` at depth 0,
/// skipping strings; the input need not be valid.
fn value_end(input: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < input.len() {
        match input[i] {
            b'"' => {
                i += 1;
                while i < input.len() && input[i] != b'"' {
                    if input[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' | b',' if depth == 0 => return i,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    input.len()
}

pub struct Mutator {
    pub rng: SmallRng,
    pool: Vec<Vec<u8>>,
    seeds: usize,
    /// Half the nesting mutations stay within this depth (the run's parser depth limit).
    pub shallow_nesting: usize,
}

impl Mutator {
    pub fn new(rng: SmallRng, seeds: Vec<Vec<u8>>) -> Mutator {
        assert!(!seeds.is_empty());
        Mutator { rng, seeds: seeds.len(), pool: seeds, shallow_nesting: 32 }
    }

    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Keeps `input` for later mutation (the caller decides it is interesting).
    pub fn keep(&mut self, input: &[u8]) {
        if input.is_empty() || input.len() > 16 * 1024 {
            return;
        }
        if self.pool.len() < self.seeds + POOL_EXTRA {
            self.pool.push(input.to_vec());
        } else {
            let i = self.rng.random_range(self.seeds..self.pool.len());
            self.pool[i].clear();
            self.pool[i].extend_from_slice(input);
        }
    }

    /// The next input: a pool entry (seeds favoured) with 1 to 16 stacked mutations, or, one
    /// time in 64, an unmutated seed (so valid frames keep flowing through every target).
    pub fn next(&mut self, out: &mut Vec<u8>) {
        out.clear();
        let from_seed = self.pool.len() == self.seeds || self.rng.random_bool(0.4);
        let i = if from_seed {
            self.rng.random_range(0..self.seeds)
        } else {
            self.rng.random_range(self.seeds..self.pool.len())
        };
        out.extend_from_slice(&self.pool[i]);
        if from_seed && self.rng.random_ratio(1, 64) {
            return;
        }
        let stack = 1 << self.rng.random_range(0..5);
        for _ in 0..stack {
            self.mutate_once(out);
        }
        out.truncate(MAX_LEN);
    }

    fn pos(&mut self, len: usize) -> usize {
        self.rng.random_range(0..=len)
    }

    fn pick<'t, T: ?Sized>(&mut self, items: &'t [&'t T]) -> &'t T {
        items[self.rng.random_range(0..items.len())]
    }

    fn random_string_content(&mut self) -> String {
        let len = if self.rng.random_bool(0.5) {
            STRING_LENS[self.rng.random_range(0..STRING_LENS.len())]
        } else {
            self.rng.random_range(0..300)
        };
        let mut s = String::with_capacity(len + 4);
        // Some strings are all digits (decimals at the length limit), some mixed.
        let digits_only = self.rng.random_bool(0.3);
        while s.len() < len {
            let c = if digits_only {
                char::from(b'0' + self.rng.random_range(0..10u8))
            } else {
                match self.rng.random_range(0..12) {
                    0..=3 => char::from(b'0' + self.rng.random_range(0..10u8)),
                    4..=6 => char::from(b'A' + self.rng.random_range(0..26u8)),
                    7 => ['.', '-', ' ', '@', '_'][self.rng.random_range(0..5)],
                    8 => 'é',
                    9 => '€',
                    10 => '😀',
                    _ => ['\u{80}', '\u{7f}', '\u{2028}', '币'][self.rng.random_range(0..4)],
                }
            };
            s.push(c);
        }
        s
    }

    fn mutate_once(&mut self, v: &mut Vec<u8>) {
        match self.rng.random_range(0..20) {
            // Flip one bit.
            0 => {
                if !v.is_empty() {
                    let i = self.rng.random_range(0..v.len());
                    v[i] ^= 1 << self.rng.random_range(0..8);
                }
            }
            // Replace a byte with an interesting one.
            1 => {
                if !v.is_empty() {
                    let i = self.rng.random_range(0..v.len());
                    v[i] = INTERESTING_BYTES[self.rng.random_range(0..INTERESTING_BYTES.len())];
                }
            }
            // Insert interesting bytes.
            2 => {
                let i = self.pos(v.len());
                let n = 1 + self.rng.random_range(0..3);
                for _ in 0..n {
                    v.insert(i, INTERESTING_BYTES[self.rng.random_range(0..INTERESTING_BYTES.len())]);
                }
            }
            // Insert or overwrite with (broken) multi-byte UTF-8.
            3 => {
                let snippet = self.pick(UTF8_SNIPPETS);
                let i = self.pos(v.len());
                if self.rng.random_bool(0.5) || i + snippet.len() > v.len() {
                    v.splice(i..i, snippet.iter().copied());
                } else {
                    v[i..i + snippet.len()].copy_from_slice(snippet);
                }
            }
            // Delete a short range.
            4 => {
                if !v.is_empty() {
                    let i = self.rng.random_range(0..v.len());
                    let n = 1 + self.rng.random_range(0..(v.len() - i).min(16));
                    v.drain(i..i + n);
                }
            }
            // Truncate.
            5 => {
                let i = self.pos(v.len());
                v.truncate(i);
            }
            // Duplicate a slice somewhere else.
            6 => {
                if !v.is_empty() {
                    let a = self.rng.random_range(0..v.len());
                    let b = a + 1 + self.rng.random_range(0..(v.len() - a).min(64));
                    let chunk = v[a..b].to_vec();
                    let at = self.pos(v.len());
                    v.splice(at..at, chunk);
                }
            }
            // Splice: our prefix, another input's suffix.
            7 => {
                let other = &self.pool[self.rng.random_range(0..self.pool.len())];
                let cut = self.rng.random_range(0..=v.len());
                let from = self.rng.random_range(0..=other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            // Insert a slice of another input.
            8 => {
                let other = &self.pool[self.rng.random_range(0..self.pool.len())];
                if !other.is_empty() {
                    let a = self.rng.random_range(0..other.len());
                    let b = a + 1 + self.rng.random_range(0..(other.len() - a).min(128));
                    let chunk = other[a..b].to_vec();
                    let at = self.rng.random_range(0..=v.len());
                    v.splice(at..at, chunk);
                }
            }
            // Swap a number for an extreme one.
            9 | 10 => {
                let (_, numbers) = scan(v);
                if !numbers.is_empty() {
                    let (a, b) = numbers[self.rng.random_range(0..numbers.len())];
                    let n = match self.rng.random_range(0..4) {
                        0 => self.rng.random::<i64>().to_string(),
                        1 => self.rng.random_range(-3i64..300).to_string(),
                        _ => self.pick(NUMBERS).to_string(),
                    };
                    v.splice(a..b, n.into_bytes());
                }
            }
            // Replace a string's content: escaped, non-ASCII, boundary lengths.
            11 | 12 => {
                let (strings, _) = scan(v);
                if !strings.is_empty() {
                    let (a, b) = strings[self.rng.random_range(0..strings.len())];
                    let s = if self.rng.random_bool(0.5) {
                        self.pick(STRINGS).to_string()
                    } else {
                        self.random_string_content()
                    };
                    v.splice(a..b, s.into_bytes());
                }
            }
            // Replace a value (string or number token) with one of another type.
            13 => {
                let (strings, numbers) = scan(v);
                let n = strings.len() + numbers.len();
                if n > 0 {
                    let k = self.rng.random_range(0..n);
                    let (a, b) = if k < strings.len() {
                        let (a, b) = strings[k];
                        (a - 1, (b + 1).min(v.len()))
                    } else {
                        numbers[k - strings.len()]
                    };
                    let val = self.pick(VALUES);
                    v.splice(a..b, val.bytes());
                }
            }
            // Insert a dictionary token.
            14 => {
                let tok = self.pick(DICT);
                let i = self.pos(v.len());
                v.splice(i..i, tok.bytes());
            }
            // Deep nesting, in place of a value or anywhere.
            15 => {
                let depth = if self.rng.random_bool(0.5) {
                    self.rng.random_range(1..=self.shallow_nesting.max(1))
                } else {
                    NEST_DEPTHS[self.rng.random_range(0..NEST_DEPTHS.len())]
                };
                let (open, inner, close): (&[u8], &[u8], &[u8]) = match self.rng.random_range(0..3) {
                    0 => (b"[", b"", b"]"),
                    1 => (b"{\"a\":", b"1", b"}"),
                    _ => (b"[{\"b\":", b"[]", b"}]"),
                };
                let mut nest = Vec::with_capacity(depth * (open.len() + close.len()) + inner.len());
                for _ in 0..depth {
                    nest.extend_from_slice(open);
                }
                nest.extend_from_slice(inner);
                for _ in 0..depth {
                    nest.extend_from_slice(close);
                }
                let (strings, numbers) = scan(v);
                if self.rng.random_bool(0.6) && !(strings.is_empty() && numbers.is_empty()) {
                    let k = self.rng.random_range(0..strings.len() + numbers.len());
                    let (a, b) = if k < strings.len() {
                        let (a, b) = strings[k];
                        (a - 1, (b + 1).min(v.len()))
                    } else {
                        numbers[k - strings.len()]
                    };
                    v.splice(a..b, nest);
                } else {
                    let i = self.pos(v.len());
                    v.splice(i..i, nest);
                }
            }
            // Duplicate or drop a `"key":value` member.
            16 => {
                let (strings, _) = scan(v);
                let keys: Spans = strings.into_iter().filter(|&(_, b)| b + 1 < v.len() && v[b + 1] == b':').collect();
                if !keys.is_empty() {
                    let (a, b) = keys[self.rng.random_range(0..keys.len())];
                    let end = value_end(v, b + 2);
                    let member = v[a - 1..end].to_vec();
                    if self.rng.random_bool(0.5) {
                        let mut dup = member;
                        dup.push(b',');
                        v.splice(a - 1..a - 1, dup);
                    } else {
                        let end = if end < v.len() && v[end] == b',' { end + 1 } else { end };
                        v.drain(a - 1..end);
                    }
                }
            }
            // Whitespace, legal and not.
            17 => {
                let ws: &[&[u8]] = &[b" ", b"\n", b"\r\n", b"\t", b"\x0b", b"\x0c", "\u{a0}".as_bytes(), b"    "];
                let w = self.pick(ws);
                let i = self.pos(v.len());
                v.splice(i..i, w.iter().copied());
            }
            // Flip the case of ASCII letters in a range.
            18 => {
                if !v.is_empty() {
                    let a = self.rng.random_range(0..v.len());
                    let b = a + 1 + self.rng.random_range(0..(v.len() - a).min(12));
                    for c in &mut v[a..b] {
                        if c.is_ascii_alphabetic() {
                            *c ^= 0x20;
                        }
                    }
                }
            }
            // Overwrite a run with one repeated byte.
            _ => {
                if !v.is_empty() {
                    let a = self.rng.random_range(0..v.len());
                    let b = a + 1 + self.rng.random_range(0..(v.len() - a).min(32));
                    let byte = if self.rng.random_bool(0.5) {
                        INTERESTING_BYTES[self.rng.random_range(0..INTERESTING_BYTES.len())]
                    } else {
                        self.rng.random()
                    };
                    v[a..b].fill(byte);
                }
            }
        }
    }
}
