//! The JSON writer behind [`super::Record::encode_in`]: static keys, pre-validated values.

use super::{is_decimal, is_word, Levels, RecordError};

/// `,"name":` as one static string, so each field costs a single copy of its key.
macro_rules! k {
    ($name:expr) => {
        concat!(",\"", $name, "\":")
    };
}
pub(super) use k;

/// The key of time field `$base` in `$unit`: `,"<base>_ms":` or `,"<base>_us":`, both static.
macro_rules! kt {
    ($unit:expr, $base:literal) => {
        match $unit {
            TimeUnit::Millis => k!(concat!($base, "_ms")),
            TimeUnit::Micros => k!(concat!($base, "_us")),
        }
    };
}
pub(super) use kt;

/// Appends `"key":value` pairs; keys are static ASCII (written whole, with their comma and
/// colon) and values are pre-validated, so nothing needs escaping and every write is a `memcpy`
/// or an `itoa`.
pub(super) struct JsonWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> JsonWriter<'o> {
    #[inline]
    pub(super) fn begin(out: &'o mut Vec<u8>, ty: &str, exchange: &str, symbol: &str) -> Self {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\",\"exchange\":\"");
        out.extend_from_slice(exchange.as_bytes());
        out.extend_from_slice(b"\",\"symbol\":\"");
        out.extend_from_slice(symbol.as_bytes());
        out.push(b'"');
        JsonWriter { out }
    }
    #[inline]
    pub(super) fn int(&mut self, key: &str, v: i64) {
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
    #[inline]
    pub(super) fn opt_int(&mut self, key: &str, v: Option<i64>) {
        match v {
            Some(v) => self.int(key, v),
            None => {
                self.out.extend_from_slice(key.as_bytes());
                self.out.extend_from_slice(b"null");
            }
        }
    }
    /// Writes the field only when there is a value: a field a venue does not send is absent,
    /// not `null`, so adding one for another venue leaves this one's records as they were.
    #[inline]
    pub(super) fn some_int(&mut self, key: &str, v: Option<i64>) {
        if let Some(v) = v {
            self.int(key, v);
        }
    }
    #[inline]
    pub(super) fn uint(&mut self, key: &str, v: u64) {
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
    #[inline]
    pub(super) fn bool(&mut self, key: &str, v: bool) {
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
    }
    #[inline]
    pub(super) fn str(&mut self, key: &str, v: &str) {
        self.out.extend_from_slice(key.as_bytes());
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
    }
    #[inline]
    pub(super) fn dec(&mut self, key: &'static str, v: &str) -> Result<(), RecordError> {
        if !is_decimal(v) {
            return Err(RecordError::BadDecimal(key));
        }
        self.str(key, v);
        Ok(())
    }
    #[inline]
    pub(super) fn word(&mut self, key: &'static str, v: &str) -> Result<(), RecordError> {
        if !is_word(v) {
            return Err(RecordError::BadWord(key));
        }
        self.str(key, v);
        Ok(())
    }
    /// Re-encodes `[["price","qty"],...]` compactly straight into the output in one pass.
    pub(super) fn levels(&mut self, key: &'static str, levels: Levels<'_>) -> Result<(), RecordError> {
        use serde::de::DeserializeSeed;
        self.out.extend_from_slice(key.as_bytes());
        let mut writer = LevelsWriter { out: self.out, bad_decimal: false };
        let mut de = sonic_rs::Deserializer::from_str(levels.0);
        let parsed = (&mut writer).deserialize(&mut de).and_then(|_| de.end());
        match parsed {
            Ok(()) => Ok(()),
            Err(_) if writer.bad_decimal => Err(RecordError::BadDecimal(key)),
            Err(_) => Err(RecordError::BadLevels),
        }
    }
    #[inline]
    pub(super) fn end(self) {
        self.out.push(b'}');
    }
}

/// A serde visitor that writes each validated `[price, qty]` pair as it is read.
struct LevelsWriter<'o> {
    out: &'o mut Vec<u8>,
    bad_decimal: bool,
}

impl<'de> serde::de::Visitor<'de> for &mut LevelsWriter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of [price, qty] string pairs")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        while let Some((p, q)) = seq.next_element::<(&'de str, &'de str)>()? {
            if !is_decimal(p) || !is_decimal(q) {
                self.bad_decimal = true;
                return Err(serde::de::Error::custom("not a decimal"));
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.out.extend_from_slice(b"[\"");
            self.out.extend_from_slice(p.as_bytes());
            self.out.extend_from_slice(b"\",\"");
            self.out.extend_from_slice(q.as_bytes());
            self.out.extend_from_slice(b"\"]");
        }
        self.out.push(b']');
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut LevelsWriter<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}
