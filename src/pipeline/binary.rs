//! The pipeline's side of a venue's binary transport (Binance's SBE): a binary frame is parsed
//! by the venue into the same [`Frame`](crate::venue::Frame)s a text frame gives, one per record
//! it holds, and each goes the text frames' way (sequence checks, ring). A trade that is the next
//! of its sequence is taken before it becomes a `Frame` (`Pipeline::take_trade`), with the same
//! checks, counters and record.

use super::{Admission, Outcome, Pipeline};
use crate::metrics::FrameKind;
use crate::record::Trade;
use crate::stream::StreamKind;
use crate::venue::{BinaryCtx, BinarySink, Frame, Refusal};

/// Where a depth event's level texts are written starts this large (a Binance diff of a few
/// hundred levels fits); it grows to the largest event seen and stays there. The most it can
/// reach is bounded by the frame: about 135 bytes of text per 16-byte level, at most 2 × 65534
/// levels (an SBE group's count), so about 17 MiB.
const SCRATCH: usize = 64 << 10;

/// What a lane's binary frames are read with.
pub(super) struct Binary {
    ctx: BinaryCtx,
    scratch: Vec<u8>,
}

/// The configured kind a binary stream's events are reported under (`depth@100ms` for SBE's
/// one `depth` stream when that is what the lane asked for): at most this many remappings.
const MAX_REMAPS: usize = 4;

impl Pipeline {
    /// Reads this lane's binary frames with `ctx` (the venue's binary transport is in use).
    pub fn set_binary(&mut self, ctx: BinaryCtx) {
        if let Some(b) = self.venue.binary {
            for reason in b.reasons {
                self.metrics.rejected.with_label_values(&[reason]);
            }
        }
        self.binary = Some(Binary { ctx, scratch: Vec::with_capacity(SCRATCH) });
    }

    /// Reports the binary transport's events under the lane's configured kinds: connections keep
    /// those (the lane moves between transports), so a stream's sequence, silence watch and
    /// metrics are the same whichever transport carries it.
    pub fn set_binary_kinds(&mut self, configured: &[StreamKind], carried: fn(StreamKind) -> Option<StreamKind>) {
        self.binary_kinds.clear();
        for &k in configured {
            if let Some(c) = carried(k).filter(|&c| c != k) {
                if self.binary_kinds.len() < MAX_REMAPS && !self.binary_kinds.iter().any(|&(from, _)| from == c) {
                    self.binary_kinds.push((c, k));
                }
            }
        }
    }

    /// Handles one binary frame received at `recv_ns`: each record it holds as a text frame's
    /// (an SBE trade event holds several), a trade next in its sequence straight into the ring.
    /// What the connection hears is the first `Joined`
    /// (a catching-up connection joined a sequence), else the last record's outcome.
    pub fn on_binary(&mut self, frame: &[u8], recv_ns: u64, admission: Admission) -> Outcome {
        // Taken out for the call so that the records can borrow the pipeline; put back below.
        let (Some(b), Some(mut state)) = (self.venue.binary, self.binary.take()) else {
            self.metrics.received(FrameKind::Unparsed).inc();
            return self.reject("binary_frame", &"binary frame on a text transport", frame);
        };
        self.frame_clock = Some(0);
        let mut sink = Taker { p: self, recv_ns, admission, frame, outcome: Outcome::Rejected };
        let parsed = (b.parse)(frame, &state.ctx, &mut state.scratch, &mut sink);
        let outcome = sink.outcome;
        self.binary = Some(state);
        self.frame_clock = None;
        match parsed {
            Ok(()) => outcome,
            Err(e) => {
                self.metrics.received(FrameKind::Unparsed).inc();
                self.reject(e.reason, &e, frame)
            }
        }
    }
}

/// The pipeline as the sink of one binary frame's records.
struct Taker<'p, 'f> {
    p: &'p mut Pipeline,
    recv_ns: u64,
    admission: Admission,
    frame: &'f [u8],
    /// The first `Joined`, else the last record's outcome.
    outcome: Outcome,
}

impl Taker<'_, '_> {
    #[inline(always)]
    fn note(&mut self, o: Outcome) {
        if !matches!(self.outcome, Outcome::Joined { .. }) {
            self.outcome = o;
        }
    }
}

impl BinarySink for Taker<'_, '_> {
    fn frame(&mut self, mut record: Result<Frame<'_>, Refusal>) {
        let p = &mut *self.p;
        // Handled where the parser put it: moved out of the `Result`, a frame was copied
        // (a `memcpy` of about 30 instructions a record).
        let o = match &mut record {
            Ok(f) => {
                if let Frame::Market { kind, .. } = f {
                    *kind = p.configured_kind(*kind);
                }
                p.on_frame(f, self.recv_ns, self.admission, self.frame)
            }
            Err(e) => {
                p.metrics.received(FrameKind::Unparsed).inc();
                p.reject(e.reason, &e, self.frame)
            }
        };
        self.note(o);
    }

    /// A catching-up connection's trades go the general way: what it may take is decided there.
    #[inline]
    fn trade(&mut self, symbol_idx: u16, trade: &Trade<'_>, more: bool) -> bool {
        if self.admission != Admission::Normal {
            return false;
        }
        match self.p.take_trade(symbol_idx, trade, more, self.recv_ns) {
            Some(o) => {
                self.note(o);
                true
            }
            None => false,
        }
    }
}

impl Pipeline {
    /// The configured kind a binary stream of `kind` is reported under ([`Pipeline::set_binary_kinds`]).
    #[inline(always)]
    pub(super) fn configured_kind(&self, kind: StreamKind) -> StreamKind {
        self.binary_kinds.iter().find(|&&(from, _)| from == kind).map_or(kind, |&(_, configured)| configured)
    }
}
