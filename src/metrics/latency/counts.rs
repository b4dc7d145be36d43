//! A recording thread's histogram: the counts of an HdrHistogram, laid out as hdrhistogram's
//! own, recorded by an inlined index computation, merged into the exported `Histogram` at
//! publish.
//!
//! `Histogram::saturating_record` was about 80 instructions a value (a call, the index with its
//! range checks, the saturating add, min/max and total updates): two of them a record, a tenth
//! of an SBE trade. The exported figures come from the shared histograms, which get the same
//! counts at the same indices, so they are what they were: a value is recorded at publish as the
//! lowest value of its bucket, and every figure (quantiles, min, max, mean, buckets) is one of
//! bucket values. The tests check the merged histogram equals one fed value by value.

use hdrhistogram::Histogram;

pub(super) struct Counts {
    /// As `Histogram`'s counts: index `((bucket + 1) << half_magnitude) + sub - half`.
    counts: Box<[u64]>,
    /// log2 of half the sub-bucket count.
    half_magnitude: u32,
    /// The sub-bucket count less one: the values of bucket 0.
    mask: u64,
    /// Where a value beyond the last count is counted: the highest trackable value's index, as
    /// `saturating_record` clamps it.
    clamp: usize,
    /// Values recorded since the last merge.
    total: u64,
}

impl Counts {
    /// Counts laid out as `like`'s (whose lowest discernible value must be 1, as every latency
    /// histogram's is).
    pub(super) fn like(like: &Histogram<u64>) -> Counts {
        assert_eq!(like.low(), 1, "a unit of 1: values are their own units");
        // The sub-bucket count is where values stop being distinguished one by one.
        let mut sub_buckets = 1u64;
        while like.equivalent_range(sub_buckets) == 1 {
            sub_buckets *= 2;
        }
        assert!(sub_buckets >= 2 && sub_buckets.is_power_of_two());
        let mut c = Counts {
            counts: vec![0; like.distinct_values()].into_boxed_slice(),
            half_magnitude: sub_buckets.trailing_zeros() - 1,
            mask: sub_buckets - 1,
            clamp: 0,
            total: 0,
        };
        c.clamp = c.index(like.high());
        assert!(c.clamp < c.counts.len(), "the highest trackable value has a count");
        c
    }

    /// hdrhistogram's `index_for` with a unit of 1.
    #[inline(always)]
    fn index(&self, v: u64) -> usize {
        let bucket = (63 - self.half_magnitude) - (v | self.mask).leading_zeros();
        let sub = (v >> bucket) as usize;
        ((bucket as usize + 1) << self.half_magnitude) + sub - (1usize << self.half_magnitude)
    }

    /// The lowest value counted at `index` (hdrhistogram's `value_for`) of counts whose
    /// sub-buckets are `2 << half_magnitude`.
    fn value_at(half_magnitude: u32, index: usize) -> u64 {
        let half = 1usize << half_magnitude;
        let bucket = (index >> half_magnitude) as i64 - 1;
        let sub = (index & (half - 1)) + half;
        if bucket < 0 {
            (sub - half) as u64
        } else {
            (sub as u64) << bucket
        }
    }

    #[inline]
    pub(super) fn record(&mut self, v: u64) {
        let i = self.index(v);
        let i = if i < self.counts.len() { i } else { self.clamp };
        self.counts[i] = self.counts[i].saturating_add(1);
        self.total += 1;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many counts (as `Histogram::distinct_values`: the memory is 8 bytes each).
    #[cfg(test)]
    pub(super) fn distinct_values(&self) -> usize {
        self.counts.len()
    }

    /// Adds the counts into `into` and `also` (histograms laid out as this one) and clears them.
    pub(super) fn drain_into(&mut self, into: &mut Histogram<u64>, mut also: Option<&mut Histogram<u64>>) {
        if self.total == 0 {
            return;
        }
        for (i, count) in self.counts.iter_mut().enumerate() {
            let n = std::mem::take(count);
            if n != 0 {
                let v = Counts::value_at(self.half_magnitude, i);
                into.saturating_record_n(v, n);
                if let Some(h) = also.as_deref_mut() {
                    h.saturating_record_n(v, n);
                }
            }
        }
        self.total = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<u64> {
        let mut v = vec![0, 1, 2, 3, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1_000, 4_095, 4_096, 4_097];
        for shift in 0..64 {
            let p = 1u64 << shift;
            v.extend([p - 1, p, p.saturating_add(1), p | (p >> 1), p | (p >> 3)]);
        }
        // A spread of latencies: microseconds to an hour, and beyond what is trackable.
        let mut x = 1u64;
        while x < u64::MAX / 4 {
            v.push(x);
            x = x * 3 + 7;
        }
        v.extend([3_600_000_000_000, 3_600_000_000_001, 3_700_000_000_000, 1 << 43, u64::MAX]);
        v
    }

    /// For both precisions: the counts merged into a histogram make the histogram fed value by
    /// value (`saturating_record`, what the recorder used): the same count at every index, the
    /// same total, min and max, so the same quantiles and buckets; merged into one holding values
    /// already, the same as `Histogram::add`.
    #[test]
    fn merged_counts_are_the_histogram_recorded_value_by_value() {
        for sigfig in [1, 2] {
            let new = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, sigfig).unwrap();
            let mut direct = new();
            let mut counts = Counts::like(&new());
            assert_eq!(counts.distinct_values(), direct.distinct_values());
            for v in values() {
                direct.saturating_record(v.max(1));
                counts.record(v.max(1));
                // Each value alone lands where hdrhistogram puts it.
                let (mut one, mut alone) = (new(), Counts::like(&new()));
                one.saturating_record(v.max(1));
                alone.record(v.max(1));
                let mut merged = new();
                alone.drain_into(&mut merged, None);
                assert!(merged == one, "sigfig {sigfig}: {v}");
            }
            let (mut merged, mut also) = (new(), new());
            also.saturating_record(42);
            let mut want_also = also.clone();
            want_also.add(&direct).unwrap();
            counts.drain_into(&mut merged, Some(&mut also));
            assert!(merged == direct, "sigfig {sigfig}");
            assert!(also == want_also, "sigfig {sigfig}");
            for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
                assert_eq!(merged.value_at_quantile(q), direct.value_at_quantile(q));
            }
            assert_eq!((merged.mean(), merged.max(), merged.min()), (direct.mean(), direct.max(), direct.min()));
            // Drained: empty, and nothing more is added.
            assert!(counts.is_empty());
            counts.drain_into(&mut merged, None);
            assert!(merged == direct);
        }
    }
}
