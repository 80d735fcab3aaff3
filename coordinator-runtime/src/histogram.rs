//! [`Histogram`]: fixed buckets for the two distributions the runtime
//! keeps, the margin left before the deadline at each renewal and the
//! latency of each store request.

use serde::Serialize;

/// Bucket bounds of [`CoordinatorMetrics::renewal_margin_seconds`](crate::CoordinatorMetrics::renewal_margin_seconds), in seconds.
pub const RENEWAL_MARGIN_BOUNDS: &[f64] = &[
    0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0,
];

/// Bucket bounds of [`CoordinatorMetrics::store_request_seconds`](crate::CoordinatorMetrics::store_request_seconds), in seconds.
pub const STORE_REQUEST_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with fixed upper bounds (seconds), as Prometheus keeps
/// them: `counts[i]` observations at most `bounds[i]` and above the bound
/// before (not cumulative), the last entry above every bound.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Histogram {
    /// The upper bounds, ascending.
    pub bounds: Vec<f64>,
    /// Per bucket, plus one for the values above the last bound.
    pub counts: Vec<u64>,
    /// How many values were observed.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

impl Histogram {
    /// An empty histogram with these bounds.
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            count: 0,
            sum: 0.0,
        }
    }

    /// Counts one value.
    pub fn observe(&mut self, value: f64) {
        let index = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(cell) = self.counts.get_mut(index) {
            *cell += 1;
        }
        self.count += 1;
        self.sum += value;
    }

    /// `(upper bound, cumulative count)` per bucket, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.counts)
            .map(|(bound, count)| {
                total += count;
                (bound, total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_bounds_and_cumulate() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 7.0] {
            h.observe(v);
        }
        assert_eq!(h.counts, vec![2, 1, 1]);
        assert_eq!(h.cumulative(), vec![(1.0, 2), (2.0, 3), (f64::INFINITY, 4)]);
        assert_eq!(h.count, 4);
        assert!((h.sum - 10.0).abs() < 1e-9);
    }
}
