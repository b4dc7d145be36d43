//! When a lane that may stream its venue's binary transport switches to the text streams and
//! back: a pure state machine, looked at once per housekeeping turn of the event loop (which
//! does the switching, `event_loop/switch.rs`), so that its rules are tested without sockets.
//!
//! - Binary -> text at once when an upgrade's API key is refused (HTTP 401, Binance's -2015):
//!   that answer does not change by asking again, and each attempt spends the venue's
//!   connection budget (300 per 5 minutes per IP).
//! - Binary -> text when a connection failed `max_failures` attempts in a row (refused, TLS,
//!   upgrade, timeout, or lost before it was stable): the binary endpoint is down for us while
//!   the text one may not be.
//! - Text -> binary when the decimal scales the binary transport needs arrive (they were missing
//!   at start), and `retry_after` after a fallback for failures (`None`: never): the key may
//!   have been granted, the endpoint may be back. The event loop switches make-before-break, so
//!   a retry that fails costs nothing but the attempts, and falls back again.

use std::time::{Duration, Instant};

use super::Fallback;

/// Which of a lane's two transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Text,
    Binary,
}

/// A switch the event loop is to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    ToText(Fallback),
    ToBinary,
}

/// What a lane's connections saw since the last look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The most attempts in a row that failed on any one connection of the binary transport.
    pub failures: u32,
    /// An upgrade's API key was refused.
    pub key_refused: bool,
    /// Every symbol's decimal scale is known.
    pub scales: bool,
}

#[derive(Debug)]
pub struct Policy {
    max_failures: u32,
    retry_after: Option<Duration>,
    mode: Mode,
    /// Why the lane streams text, and since when (`None` while binary).
    fallback: Option<(Fallback, Instant)>,
}

impl Policy {
    /// A lane starting binary when the scales are known, text (for want of them) otherwise.
    pub fn new(max_failures: u32, retry_after: Option<Duration>, scales: bool, now: Instant) -> Policy {
        let (mode, fallback) =
            if scales { (Mode::Binary, None) } else { (Mode::Text, Some((Fallback::NoScales, now))) };
        Policy { max_failures: max_failures.max(1), retry_after, mode, fallback }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Why the lane streams text, when it does.
    pub fn fallback(&self) -> Option<Fallback> {
        self.fallback.map(|(f, _)| f)
    }

    /// One look at what the connections saw: the switch to make now, if any.
    pub fn turn(&mut self, now: Instant, seen: Seen) -> Option<Switch> {
        let switch = match (self.mode, self.fallback) {
            (Mode::Binary, _) if seen.key_refused => Switch::ToText(Fallback::KeyRefused),
            (Mode::Binary, _) if seen.failures >= self.max_failures => Switch::ToText(Fallback::SbeFailures),
            (Mode::Text, Some((Fallback::NoScales, _))) if seen.scales => Switch::ToBinary,
            (Mode::Text, Some((_, since)))
                if seen.scales && self.retry_after.is_some_and(|d| now.saturating_duration_since(since) >= d) =>
            {
                Switch::ToBinary
            }
            _ => return None,
        };
        match switch {
            Switch::ToText(why) => (self.mode, self.fallback) = (Mode::Text, Some((why, now))),
            Switch::ToBinary => (self.mode, self.fallback) = (Mode::Binary, None),
        }
        Some(switch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn seen(failures: u32, key_refused: bool) -> Seen {
        Seen { failures, key_refused, scales: true }
    }

    #[test]
    fn repeated_failures_or_a_refused_key_switch_to_text_and_the_retry_waits_its_period() {
        let t0 = Instant::now();
        let mut p = Policy::new(3, Some(60 * S), true, t0);
        assert_eq!(p.mode(), Mode::Binary);
        assert_eq!(p.turn(t0, seen(2, false)), None, "two failures are not yet three");
        assert_eq!(p.turn(t0 + S, seen(3, false)), Some(Switch::ToText(Fallback::SbeFailures)));
        assert_eq!((p.mode(), p.fallback()), (Mode::Text, Some(Fallback::SbeFailures)));
        // Failures counted while text are not looked at; the retry comes after its period.
        assert_eq!(p.turn(t0 + 30 * S, seen(9, true)), None);
        assert_eq!(p.turn(t0 + 60 * S, seen(0, false)), None, "59 s after the switch");
        assert_eq!(p.turn(t0 + 61 * S, seen(0, false)), Some(Switch::ToBinary));
        assert_eq!((p.mode(), p.fallback()), (Mode::Binary, None));
        // A refused key needs no count.
        assert_eq!(p.turn(t0 + 62 * S, seen(0, true)), Some(Switch::ToText(Fallback::KeyRefused)));
        assert_eq!(p.turn(t0 + 122 * S, seen(0, false)), Some(Switch::ToBinary));
        // Without scales (they went missing with a refresh that failed: none known) no retry.
        let mut p = Policy::new(1, Some(S), true, t0);
        assert_eq!(p.turn(t0, seen(1, false)), Some(Switch::ToText(Fallback::SbeFailures)));
        assert_eq!(p.turn(t0 + 2 * S, Seen { scales: false, ..Seen::default() }), None);
    }

    #[test]
    fn without_a_retry_period_the_fallback_is_for_good_and_missing_scales_wait_for_scales() {
        let t0 = Instant::now();
        let mut p = Policy::new(5, None, true, t0);
        assert_eq!(p.turn(t0, seen(0, true)), Some(Switch::ToText(Fallback::KeyRefused)));
        assert_eq!(p.turn(t0 + 86_400 * S, seen(0, false)), None);
        assert_eq!(p.mode(), Mode::Text);

        let mut p = Policy::new(5, None, false, t0);
        assert_eq!((p.mode(), p.fallback()), (Mode::Text, Some(Fallback::NoScales)));
        assert_eq!(p.turn(t0 + S, Seen::default()), None);
        assert_eq!(p.turn(t0 + 2 * S, Seen { scales: true, ..Seen::default() }), Some(Switch::ToBinary));
        // At least one failure is needed, whatever was configured.
        let mut p = Policy::new(0, None, true, t0);
        assert_eq!(p.turn(t0, seen(0, false)), None);
    }
}
