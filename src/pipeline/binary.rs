//! The pipeline's side of a venue's binary transport (Binance's SBE): a binary frame is parsed
//! by the venue into the same [`Frame`](crate::venue::Frame)s a text frame gives, one per record
//! it holds, and each goes the text frames' way (sequence checks, ring).

use super::{Admission, Outcome, Pipeline};
use crate::metrics::FrameKind;
use crate::venue::BinaryCtx;

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

    /// Handles one binary frame received at `recv_ns`: each record it holds as a text frame's
    /// (an SBE trade event holds several). What the connection hears is the first `Joined`
    /// (a catching-up connection joined a sequence), else the last record's outcome.
    pub fn on_binary(&mut self, frame: &[u8], recv_ns: u64, admission: Admission) -> Outcome {
        // Taken out for the call so that the records can borrow the pipeline; put back below.
        let (Some(b), Some(mut state)) = (self.venue.binary, self.binary.take()) else {
            self.metrics.received(FrameKind::Unparsed).inc();
            return self.reject("binary_frame", &"binary frame on a text transport", frame);
        };
        let mut outcome = Outcome::Rejected;
        let parsed = (b.parse)(frame, &state.ctx, &mut state.scratch, &mut |record| {
            let o = match record {
                Ok(f) => self.on_frame(f, recv_ns, admission, frame),
                Err(e) => {
                    self.metrics.received(FrameKind::Unparsed).inc();
                    self.reject(e.reason, &e, frame)
                }
            };
            if !matches!(outcome, Outcome::Joined { .. }) {
                outcome = o;
            }
        });
        self.binary = Some(state);
        match parsed {
            Ok(()) => outcome,
            Err(e) => {
                self.metrics.received(FrameKind::Unparsed).inc();
                self.reject(e.reason, &e, frame)
            }
        }
    }
}
