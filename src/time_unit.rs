//! The unit of every exchange time in a record: milliseconds (Binance's default) or microseconds
//! (`TIME_UNIT=us`: Binance's `timeUnit=MICROSECOND` on the stream and `X-MBX-TIME-UNIT` on REST).
//!
//! Records carry the times exactly as the venue sent them, so the unit is in the field names: a
//! consumer reading `trade_time_us` never mistakes microseconds for milliseconds. The scheme is
//! one rule: every `*_time_ms` field of a record or gap record becomes `*_time_us`
//! (`event_time_us`, `trade_time_us`, a kline's `open_time_us`/`close_time_us`, a kline gap's
//! `from_open_time_us`/`to_open_time_us`); `recv_time_ns` stays as it is, our own clock.
//! Sequences that count in time (klines, keyed by open time) scale their interval lengths by
//! [`TimeUnit::per_ms`]; the Kafka message timestamp, which Kafka defines in milliseconds, is the
//! event time converted with [`TimeUnit::to_ms`].

/// The unit of exchange times, in records and in the venue's frames alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeUnit {
    #[default]
    Millis,
    Micros,
}

impl TimeUnit {
    /// Units in one millisecond: what a candle length in ms is multiplied by.
    pub const fn per_ms(self) -> i64 {
        match self {
            TimeUnit::Millis => 1,
            TimeUnit::Micros => 1000,
        }
    }

    /// `t` in this unit as milliseconds (floored, so an instant stays in its millisecond).
    pub const fn to_ms(self, t: i64) -> i64 {
        t.div_euclid(self.per_ms())
    }

    /// `ms` milliseconds in this unit, saturating.
    pub const fn from_ms(self, ms: i64) -> i64 {
        ms.saturating_mul(self.per_ms())
    }

    /// `us` microseconds in this unit (floored, as [`TimeUnit::to_ms`]): a venue that always
    /// sends microseconds (Binance's SBE streams) gives the records' unit.
    pub const fn from_us(self, us: i64) -> i64 {
        match self {
            TimeUnit::Millis => us.div_euclid(1000),
            TimeUnit::Micros => us,
        }
    }

    /// Nanoseconds in one unit (latency against the receive clock, which counts in ns).
    pub const fn ns(self) -> u64 {
        1_000_000 / self.per_ms() as u64
    }

    /// The suffix of time field names: `ms` or `us`.
    pub const fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Millis => "ms",
            TimeUnit::Micros => "us",
        }
    }

    /// The name of the time field `base` (`"event_time"`) in this unit, for text built off the
    /// hot path (gap records); the hot path uses static keys of both units.
    pub fn field(self, base: &str) -> String {
        format!("{base}_{}", self.suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_floor_and_saturate() {
        let us = TimeUnit::Micros;
        assert_eq!((us.to_ms(1_672_515_782_136_999), us.to_ms(-1)), (1_672_515_782_136, -1));
        assert_eq!((us.from_ms(60_000), us.from_ms(i64::MAX)), (60_000_000, i64::MAX));
        assert_eq!((us.ns(), TimeUnit::Millis.ns()), (1_000, 1_000_000));
        assert_eq!((TimeUnit::Millis.to_ms(7), TimeUnit::Millis.per_ms()), (7, 1));
        assert_eq!(
            (TimeUnit::Millis.from_us(1_672_515_782_136_999), us.from_us(7), TimeUnit::Millis.from_us(-1)),
            (1_672_515_782_136, 7, -1)
        );
        assert_eq!(
            (us.field("open_time"), TimeUnit::default().field("event_time")),
            ("open_time_us".into(), "event_time_ms".into())
        );
    }
}
