//! Gap records whose own delivery failed. A gap record is the only trace of the ids it names:
//! dropped, their loss would be silent. It cannot be fetched again like a trade, so a copy of it
//! is kept for the producer's next turn to send again, to the topic and with the key it had
//! (failures only: nothing here runs per record).
//!
//! One whose failure was `POSSIBLY_PERSISTED` may then be in the topic twice. That is harmless:
//! two gap records naming the same ids say the same thing, and consumers already take a range
//! named again (a backfilled id after a gap) as settled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::handoff::OwnedRecord;

/// At most this many failed gap records are kept (each a few hundred bytes with its key, so
/// about 2 MiB at most). Gap records are rare (one per run of failed ids, per turn); past this,
/// a failure is counted `dropped` and logged.
pub const MAX_FAILED_MARKERS: usize = 4_096;

/// The failed gap records waiting to be sent again, oldest first.
#[derive(Default)]
pub struct FailedMarkers {
    held: Mutex<Vec<OwnedRecord>>,
    /// Not empty: an atomic load per producer turn instead of a lock.
    any: AtomicBool,
}

impl FailedMarkers {
    /// Keeps `rec` to be sent again; false (and `rec` dropped) when [`MAX_FAILED_MARKERS`] wait.
    pub fn push(&self, rec: OwnedRecord) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() >= MAX_FAILED_MARKERS {
            return false;
        }
        held.push(rec);
        self.any.store(true, Ordering::Release);
        true
    }

    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// Everything held, oldest first; `None` (without locking) when there is nothing.
    pub fn take(&self) -> Option<Vec<OwnedRecord>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.any
            .swap(false, Ordering::AcqRel)
            .then(|| std::mem::take(&mut *self.held.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// Puts back what could not be sent yet, before anything that failed meanwhile; returns how
    /// many are held, and the newest that went past the bound (for the caller to drop). (Delivery
    /// reports are served on the producer thread, which also takes and puts back, so in the sink
    /// nothing fails in between and none is dropped here; the bound holds regardless.)
    pub fn put_back(&self, mut rest: Vec<OwnedRecord>) -> (usize, Vec<OwnedRecord>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        rest.append(&mut held);
        let over = rest.split_off(rest.len().min(MAX_FAILED_MARKERS));
        *held = rest;
        self.any.store(!held.is_empty(), Ordering::Release);
        (held.len(), over)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordType;
    use crate::ring::{RecordMeta, FLAG_MARKER};

    fn marker(n: u64) -> OwnedRecord {
        let meta =
            RecordMeta { kind: RecordType::Trade, flags: FLAG_MARKER, symbol_idx: 0, event_time_ms: 1, recv_ns: n };
        OwnedRecord { meta, key: b"BTCUSDT".to_vec(), payload: format!("{n}").into_bytes() }
    }

    #[test]
    fn failed_gap_records_wait_in_order_within_their_bound() {
        let f = FailedMarkers::default();
        assert!(f.is_empty() && f.take().is_none());
        for n in 0..MAX_FAILED_MARKERS as u64 {
            assert!(f.push(marker(n)));
        }
        assert!(!f.push(marker(u64::MAX)), "one past the bound is refused");
        let mut all = f.take().unwrap();
        assert!(f.is_empty());
        assert_eq!(all.len(), MAX_FAILED_MARKERS);
        assert_eq!(all[7].payload, b"7");
        // Two sent, the rest put back; one more failed meanwhile goes after them.
        all.drain(..2);
        assert!(f.push(marker(9_999)));
        let (held, over) = f.put_back(all);
        assert_eq!((held, over.len()), (MAX_FAILED_MARKERS - 1, 0));
        let again = f.take().unwrap();
        assert_eq!(again[0].payload, b"2");
        assert_eq!(again.last().unwrap().payload, b"9999");
        // Put back over a full store: the newest past the bound are dropped, and said to be.
        for n in 0..MAX_FAILED_MARKERS as u64 {
            assert!(f.push(marker(n)));
        }
        let (held, over) = f.put_back(again);
        assert_eq!((held, over.len()), (MAX_FAILED_MARKERS, MAX_FAILED_MARKERS - 1));
        assert_eq!(over[0].payload, b"1", "the newest go, to be dropped by the caller");
        assert_eq!(f.take().unwrap()[0].payload, b"2", "the oldest are kept");
    }
}
