//! The configured symbols, indexed once: every thread names a symbol by its index into this list
//! (a bounded metric label, a `u16` in the ring header), and looks an index up here, from the
//! lower-case form of stream names or the upper-case form records and Kafka keys carry.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;

/// Built once at start ([`crate::metrics::Metrics`] carries it to every thread); read-only after.
#[derive(Debug, Default)]
pub struct Symbols {
    lower: Vec<String>,
    upper: Vec<String>,
    by_lower: Index,
    by_upper: Index,
}

impl Symbols {
    /// `symbols` as configured (lower case, as in stream names); at most `u16::MAX` of them.
    pub fn new(symbols: &[String]) -> Symbols {
        let lower: Vec<String> = symbols.to_vec();
        let upper: Vec<String> = lower.iter().map(|s| s.to_uppercase()).collect();
        Symbols { by_lower: Index::new(&lower), by_upper: Index::new(&upper), lower, upper }
    }

    /// The index of a symbol as a stream name writes it (lower case).
    #[inline]
    pub fn index_of_lower(&self, s: &str) -> Option<u16> {
        self.by_lower.get(s)
    }

    /// The index of a symbol as records and Kafka keys write it (upper case): what every SBE
    /// event is looked up by.
    #[inline]
    pub fn index_of_upper(&self, s: &str) -> Option<u16> {
        self.by_upper.get(s)
    }

    /// The index of a symbol as records write it, `hint` tried first (the one the last look-up
    /// gave: events come in runs of one symbol), by comparing its words, without the map. The
    /// same answer as [`Symbols::index_of_upper`]: the names are unique (the configuration
    /// drops repeats), so the one index a name has is the hint's or the map's.
    #[inline]
    pub fn index_of_upper_from(&self, hint: u16, s: &str) -> Option<u16> {
        let same = match (self.by_upper.keys.get(usize::from(hint)), Short::of(s)) {
            (Some(&Some(key)), Some(short)) => key == short,
            _ => self.upper.get(usize::from(hint)).is_some_and(|u| u == s),
        };
        if same {
            return Some(hint);
        }
        self.index_of_upper(s)
    }

    /// The upper-case symbol of index `i`: the Kafka key, and what REST is asked for.
    pub fn upper(&self, i: u16) -> &str {
        &self.upper[i as usize]
    }
}

/// The configured (lower-case) names, in order: what metric labels and logs show.
impl std::ops::Deref for Symbols {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.lower
    }
}

/// An exact lookup of one spelling of the symbols. A name of up to 16 bytes (every Binance
/// symbol listed today: `BTCUSDT` has 7) is keyed by its length and two words that hold all of
/// its bytes ([`Short`]), hashed by one multiply and compared as three integers, where hashing
/// and comparing the text cost about 45 instructions an SBE trade (FxHash over the bytes, a
/// `memcmp` call). Longer names keep a map by their text.
#[derive(Debug, Default)]
struct Index {
    /// Each name's key by its index (`None`: longer than 16 bytes).
    keys: Vec<Option<Short>>,
    short: FxHashMap<Short, u16>,
    long: FxHashMap<String, u16>,
}

impl Index {
    fn new(names: &[String]) -> Index {
        let mut index = Index::default();
        for (i, name) in names.iter().enumerate() {
            let i = i as u16;
            let key = Short::of(name);
            index.keys.push(key);
            match key {
                Some(key) => index.short.insert(key, i),
                None => index.long.insert(name.clone(), i),
            };
        }
        index
    }

    #[inline]
    fn get(&self, s: &str) -> Option<u16> {
        match Short::of(s) {
            Some(key) => self.short.get(&key).copied(),
            None => self.long.get(s).copied(),
        }
    }
}

/// A name of at most 16 bytes as its length and two words that together hold every byte of it:
/// two names have the same `Short` exactly when they are the same text.
///
/// - 8 to 16 bytes: the first 8 and the last 8 (they overlap below 16, and cover all of it);
/// - 4 to 7: the first 4 and the last 4, in one word;
/// - 1 to 3: bytes 0, `len / 2` and `len - 1` (every byte at these lengths).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Short {
    words: [u64; 2],
    len: usize,
}

impl Short {
    #[inline]
    fn of(s: &str) -> Option<Short> {
        let b = s.as_bytes();
        let n = b.len();
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u64::from(u32::from_le_bytes(b[at..at + 4].try_into().unwrap()));
        let words = match n {
            8..=16 => [u64_at(0), u64_at(n - 8)],
            4..=7 => [u32_at(0) | u32_at(n - 4) << 32, 0],
            1..=3 => [u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16, 0],
            0 => [0, 0],
            _ => return None,
        };
        Some(Short { words, len: n })
    }
}

impl Hash for Short {
    /// One word for FxHash to mix (a rotate, a xor and a multiply), not three.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.words[0] ^ self.words[1].rotate_left(23) ^ (self.len as u64).rotate_left(47));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_cases_find_the_same_index() {
        let s = Symbols::new(&["btcusdt".to_string(), "币安人生usdt".to_string()]);
        assert_eq!(s.index_of_lower("币安人生usdt"), Some(1));
        assert_eq!(s.index_of_upper("币安人生USDT"), Some(1));
        assert_eq!(s.index_of_upper("btcusdt"), None);
        assert_eq!(s.upper(0), "BTCUSDT");
        assert_eq!((s.len(), s[0].as_str()), (2, "btcusdt"));
    }

    /// Every configured name is found at its index and nothing else is, among 1,500 names of
    /// every length from 1 to 24 (so across each of [`Short`]'s shapes and the long map), many
    /// sharing their first and last bytes, against a map keyed by the whole text; and every name
    /// with one byte changed, one byte more or one less, is looked up too.
    #[test]
    fn exact_for_1500_names_of_every_length() {
        let mut names: Vec<String> = Vec::new();
        let alphabet = b"ABCXYZ019";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        while names.len() < 1_500 {
            let len = 1 + (next() % 24) as usize;
            let mut s: Vec<u8> = (0..len).map(|_| alphabet[(next() % 9) as usize]).collect();
            // Past 16 bytes, the same first and last eight as every other: only the middle differs.
            if len > 16 {
                s[..8].copy_from_slice(b"ABCXYZ01");
                s[len - 8..].copy_from_slice(b"9ZYXCBA0");
            }
            let s = String::from_utf8(s).unwrap();
            if !names.contains(&s) {
                names.push(s);
            }
        }
        let lower: Vec<String> = names.iter().map(|s| s.to_lowercase()).collect();
        let symbols = Symbols::new(&lower);
        let whole: std::collections::HashMap<&str, u16> =
            names.iter().enumerate().map(|(i, s)| (s.as_str(), i as u16)).collect();
        let mut probes = 0;
        for (i, name) in names.iter().enumerate() {
            assert_eq!(symbols.index_of_upper(name), Some(i as u16), "{name}");
            assert_eq!(symbols.index_of_upper_from(i as u16, name), Some(i as u16), "{name}");
            assert_eq!(symbols.index_of_upper_from(0, name), Some(i as u16), "{name} from 0");
            assert_eq!(symbols.index_of_lower(&lower[i]), Some(i as u16), "{name}");
            let b = name.as_bytes();
            let mut variants: Vec<Vec<u8>> = vec![b[..b.len() - 1].to_vec(), [b, b"A"].concat(), [b"A", b].concat()];
            for at in 0..b.len() {
                for c in [b'A', b'Z', b'0', b'Q'] {
                    let mut v = b.to_vec();
                    v[at] = c;
                    variants.push(v);
                }
            }
            for v in variants {
                let v = String::from_utf8(v).unwrap();
                let expected = whole.get(v.as_str()).copied();
                assert_eq!(symbols.index_of_upper(&v), expected, "{v}");
                // A hint is only tried: the name it points at (this variant's near twin),
                // another one, or none, the answer is the look-up's.
                for hint in [i as u16, ((i + 1) % names.len()) as u16, u16::MAX] {
                    assert_eq!(symbols.index_of_upper_from(hint, &v), expected, "{v} from {hint}");
                }
                probes += 1;
            }
        }
        assert!(probes > 50_000, "{probes}");
        assert_eq!(symbols.index_of_upper(""), None);
    }
}
