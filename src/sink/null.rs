//! A sink that counts and discards, to measure the ingester without a broker.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::producer::record_latency;
use super::{SendError, Sink};
use crate::metrics::{Metrics, Stage};
use crate::ring::RecordView;

/// Counts and discards: measures the ingester without a broker.
pub struct NullSink {
    metrics: Arc<Metrics>,
}

impl NullSink {
    pub fn new(metrics: Arc<Metrics>) -> NullSink {
        metrics.health.sink_ready.store(true, Ordering::Relaxed);
        NullSink { metrics }
    }
}

impl Sink for NullSink {
    fn send(&mut self, rec: &RecordView<'_>) -> Result<(), SendError> {
        self.metrics.messages_sent[rec.meta.symbol_idx as usize].inc();
        record_latency(
            Stage::EnqueueToAck,
            rec.meta.symbol_idx as usize,
            crate::clock::now_ns().saturating_sub(rec.enqueue_ns),
        );
        Ok(())
    }
    fn poll(&mut self, _timeout: Duration) {}
    fn in_flight(&self) -> usize {
        0
    }
    fn flush(&mut self, _timeout: Duration) -> usize {
        0
    }
}
