//! The stall detector: how late the runtime runs a task that asked to wake.
//!
//! A task sleeps [`PERIOD`] again and again and measures how much later
//! than asked it ran. On a healthy runtime that is the timer's rounding
//! (about a millisecond); when something holds the thread — a blocking
//! call, a long loop without an await, the process descheduled — every
//! client task waits as long, and this task sees it. It runs while the
//! proxy serves, so any proxy (the daemon's, a test's) reports it on
//! `/metrics`: `pgha_runtime_stall_max_seconds` (the longest lateness
//! seen) and `pgha_runtime_stalls_total` (wakes later than
//! [`STALL`]); each is logged with its wall-clock time, to line up with a
//! client's latency log: at DEBUG, or at WARN past [`WARN_AFTER`].
//!
//! Cost: one timer wake per [`PERIOD`], two clock reads; a metric update
//! only when the longest grows or a stall is counted.

use std::time::{Duration, Instant, SystemTime};

use crate::ProxyMetrics;

/// How often the detector wakes. Some wake falls due inside any stall
/// longer than this, so a stall of `d` shows as a lateness between
/// `d - PERIOD` and `d`. Each wake of an idle runtime costs about 27 µs of
/// CPU on the 2-core VM it was measured on (epoll, the eventfd that wakes
/// the parked thread): an idle `pgha run` used 0.33 % of a core with it,
/// 0.05 % without (5 ms: 0.57 %). A busy runtime is awake anyway.
pub const PERIOD: Duration = Duration::from_millis(10);

/// Lateness counted as a stall: PgBouncer's worst transaction on a loaded
/// 2-core machine stays below it (issue 15).
pub const STALL: Duration = Duration::from_millis(20);

/// Lateness logged at WARN: a client would notice it.
pub const WARN_AFTER: Duration = Duration::from_millis(100);

/// The lateness bookkeeping, without clock or runtime.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StallWatch {
    /// The longest lateness seen.
    pub longest: Duration,
    /// Wakes later than [`STALL`].
    pub stalls: u64,
}

impl StallWatch {
    /// Records a wake at `woke` that was due at `due`; returns its
    /// lateness (zero when on time, or early by the clock).
    pub fn woke(&mut self, due: Instant, woke: Instant) -> Duration {
        let late = woke.saturating_duration_since(due);
        self.longest = self.longest.max(late);
        if late > STALL {
            self.stalls += 1;
        }
        late
    }
}

/// Measures the runtime's lateness into `metrics` until dropped.
pub(crate) async fn run(metrics: std::sync::Arc<ProxyMetrics>) {
    let mut watch = StallWatch::default();
    loop {
        let due = Instant::now() + PERIOD;
        tokio::time::sleep(PERIOD).await;
        let longest = watch.longest;
        let late = watch.woke(due, Instant::now());
        if watch.longest > longest {
            metrics.runtime_stall_max(watch.longest);
        }
        if late > STALL {
            metrics.runtime_stalled();
        }
        if late > STALL {
            // Epoch milliseconds: pgbench's -l log counts in epoch time.
            let unix_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let late_ms = late.as_millis();
            if late > WARN_AFTER {
                tracing::warn!(late_ms, unix_ms, "runtime stall: no task ran for this long");
            } else {
                tracing::debug!(late_ms, unix_ms, "runtime stall");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wakes_later_than_the_threshold_count_and_the_longest_is_kept() {
        let due = Instant::now();
        let mut watch = StallWatch::default();
        let ms = Duration::from_millis;
        assert_eq!(watch.woke(due, due + ms(1)), ms(1));
        assert_eq!(watch.woke(due, due + STALL), STALL);
        assert_eq!(watch.stalls, 0, "exactly the threshold is not a stall");
        watch.woke(due, due + ms(250));
        watch.woke(due, due + ms(30));
        assert_eq!(
            watch,
            StallWatch {
                longest: ms(250),
                stalls: 2
            }
        );
    }

    #[test]
    fn an_early_wake_counts_as_on_time() {
        let woke = Instant::now();
        let mut watch = StallWatch::default();
        assert_eq!(watch.woke(woke + PERIOD, woke), Duration::ZERO);
        assert_eq!(watch, StallWatch::default());
    }
}
