//! JSON lines on stdout, for a look at the records without a broker.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{SendError, Sink};
use crate::metrics::Metrics;
use crate::ring::RecordView;

/// JSON lines on stdout.
pub struct StdoutSink {
    out: std::io::BufWriter<std::io::Stdout>,
    metrics: Arc<Metrics>,
    dirty: bool,
}

impl StdoutSink {
    pub fn new(metrics: Arc<Metrics>) -> StdoutSink {
        metrics.health.sink_ready.store(true, Ordering::Relaxed);
        StdoutSink { out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()), metrics, dirty: false }
    }
}

impl Sink for StdoutSink {
    fn send(&mut self, rec: &RecordView<'_>) -> Result<(), SendError> {
        let ok = self.out.write_all(rec.payload).and_then(|_| self.out.write_all(b"\n"));
        if ok.is_err() {
            // A closed pipe (`| head`) is not worth retrying.
            self.metrics.sink_errors.with_label_values(&["stdout"]).inc();
            return Err(SendError::Rejected("stdout"));
        }
        self.dirty = true;
        self.metrics.messages_sent[rec.meta.symbol_idx as usize].inc();
        Ok(())
    }
    fn poll(&mut self, _timeout: Duration) {
        if self.dirty {
            let _ = self.out.flush();
            self.dirty = false;
        }
    }
    fn in_flight(&self) -> usize {
        0
    }
    fn flush(&mut self, _timeout: Duration) -> usize {
        let _ = self.out.flush();
        0
    }
}
