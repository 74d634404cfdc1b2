//! Reading the members' logs for the hand-run measurements: when a line
//! was written, and how often a member took the lease.

use crate::group::Deployment;

/// Seconds since midnight UTC of a log line's leading RFC 3339 timestamp.
pub fn log_time(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split('T').nth(1)?;
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Seconds since midnight UTC now.
pub fn now_of_day() -> f64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    since % 86_400.0
}

/// How many times any member logged that it acquired the lease.
pub fn lease_lines(d: &Deployment) -> usize {
    d.daemons
        .iter()
        .map(|x| {
            x.log_text()
                .matches("lease acquired: this member leads")
                .count()
        })
        .sum()
}
