//! Values with units in `pgha.toml`: durations (`"1s"`, `"500ms"`, and
//! `"none"` for a limit) and byte sizes (`16777216`, `"16MB"`, `"none"`).

use std::fmt;
use std::time::Duration;

use pgha_core::duration_serde;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written with its unit, as [`duration_serde::parse`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

struct DurVisitor;

impl Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration with a unit, like \"1s\" or \"500ms\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Dur, E> {
        duration_serde::parse(text).map(Dur).map_err(E::custom)
    }

    // pgpool.conf's periods are bare seconds; say what to write instead of
    // guessing the unit.
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
        Err(E::custom(format!(
            "a duration needs a unit: write \"{n}s\" or \"{n}ms\""
        )))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Dur, E> {
        Err(E::custom(format!(
            "a duration needs a unit: write \"{n}s\" or \"{n}ms\""
        )))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&duration_serde::format(self.0))
    }
}

/// A time limit: a duration with its unit, or `"none"` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurLimit(pub Option<Duration>);

impl<'de> Deserialize<'de> for DurLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurLimitVisitor)
    }
}

struct DurLimitVisitor;

impl Visitor<'_> for DurLimitVisitor {
    type Value = DurLimit;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration with a unit, like \"10s\", or \"none\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DurLimit, E> {
        parse_dur_limit(text).map(DurLimit).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<DurLimit, E> {
        DurVisitor.visit_i64(n).map(|d| DurLimit(Some(d.0)))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<DurLimit, E> {
        DurVisitor.visit_u64(n).map(|d| DurLimit(Some(d.0)))
    }
}

impl Serialize for DurLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(d) => s.serialize_str(&duration_serde::format(d)),
            None => s.serialize_str("none"),
        }
    }
}

impl std::str::FromStr for ByteLimit {
    type Err = String;

    /// As in the file (for flags).
    fn from_str(text: &str) -> Result<Self, String> {
        parse_limit(text).map(ByteLimit)
    }
}

impl std::str::FromStr for Dur {
    type Err = String;

    /// As in the file (for flags).
    fn from_str(text: &str) -> Result<Self, String> {
        duration_serde::parse(text).map(Dur)
    }
}

impl std::str::FromStr for DurLimit {
    type Err = String;

    /// As in the file (for flags).
    fn from_str(text: &str) -> Result<Self, String> {
        parse_dur_limit(text).map(DurLimit)
    }
}

/// Parses `"10s"`, `"500ms"`, `"none"`.
pub fn parse_dur_limit(text: &str) -> Result<Option<Duration>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    duration_serde::parse(text).map(Some)
}

/// A byte limit: a number of bytes, a size with a unit (`kB`, `MB`, `GB`,
/// `TB`, each 1024 times the one before, as in postgresql.conf), or
/// `"none"` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteLimit(pub Option<u64>);

impl<'de> Deserialize<'de> for ByteLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByteLimitVisitor)
    }
}

struct ByteLimitVisitor;

impl Visitor<'_> for ByteLimitVisitor {
    type Value = ByteLimit;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of bytes, a size like \"16MB\", or \"none\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteLimit, E> {
        parse_limit(text).map(ByteLimit).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteLimit, E> {
        u64::try_from(n)
            .map(|n| ByteLimit(Some(n)))
            .map_err(|_| E::custom(format!("{n} bytes: a size cannot be negative")))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteLimit, E> {
        Ok(ByteLimit(Some(n)))
    }
}

impl Serialize for ByteLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(bytes) => s.serialize_u64(bytes),
            None => s.serialize_str("none"),
        }
    }
}

/// Parses `"16MB"`, `"512kB"`, `"1048576"`, `"none"`.
pub fn parse_limit(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a size (write e.g. 1048576, \"16MB\" or \"none\")")
    })?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "kB" | "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use B, kB, MB, GB or TB)"
            ))
        }
    };
    number
        .checked_mul(1 << shift)
        .map(Some)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_take_a_unit_or_none() {
        assert_eq!(parse_dur_limit("10s"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(
            parse_dur_limit("250ms"),
            Ok(Some(Duration::from_millis(250)))
        );
        assert_eq!(parse_dur_limit("none"), Ok(None));
        for bad in ["", "10", "ten seconds", "-1s"] {
            assert!(parse_dur_limit(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn sizes_read_like_postgresql_conf() {
        assert_eq!(parse_limit("16MB"), Ok(Some(16 << 20)));
        assert_eq!(parse_limit("512kB"), Ok(Some(512 << 10)));
        assert_eq!(parse_limit("1 GB"), Ok(Some(1 << 30)));
        assert_eq!(parse_limit("10000000"), Ok(Some(10_000_000)));
        assert_eq!(parse_limit("none"), Ok(None));
        for bad in ["", "MB", "16 parsecs", "-1MB", "1.5MB", "99999999999TB"] {
            assert!(parse_limit(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
