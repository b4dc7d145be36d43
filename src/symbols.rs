//! The configured symbols, indexed once: every thread names a symbol by its index into this list
//! (a bounded metric label, a `u16` in the ring header), and looks an index up here, from the
//! lower-case form of stream names or the upper-case form records and Kafka keys carry.

use rustc_hash::FxHashMap;

/// Built once at start ([`crate::metrics::Metrics`] carries it to every thread); read-only after.
#[derive(Debug, Default)]
pub struct Symbols {
    lower: Vec<String>,
    upper: Vec<String>,
    /// FxHash: a short key hashed per message, where SipHash's DoS resistance buys nothing (the
    /// keys are our own configuration).
    by_lower: FxHashMap<String, u16>,
    by_upper: FxHashMap<String, u16>,
}

impl Symbols {
    /// `symbols` as configured (lower case, as in stream names); at most `u16::MAX` of them.
    pub fn new(symbols: &[String]) -> Symbols {
        let lower: Vec<String> = symbols.to_vec();
        let upper: Vec<String> = lower.iter().map(|s| s.to_uppercase()).collect();
        let index = |v: &[String]| v.iter().enumerate().map(|(i, s)| (s.clone(), i as u16)).collect();
        Symbols { by_lower: index(&lower), by_upper: index(&upper), lower, upper }
    }

    /// The index of a symbol as a stream name writes it (lower case).
    pub fn index_of_lower(&self, s: &str) -> Option<u16> {
        self.by_lower.get(s).copied()
    }

    /// The index of a symbol as records and Kafka keys write it (upper case).
    pub fn index_of_upper(&self, s: &str) -> Option<u16> {
        self.by_upper.get(s).copied()
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
}
