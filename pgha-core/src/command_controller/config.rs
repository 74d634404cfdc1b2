//! The settings of [`CommandNodeController`](crate::CommandNodeController).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// The operator's commands, as pgpool-II's `failover_command` and
/// `follow_primary_command` (see [`CommandTemplate`](crate::CommandTemplate)
/// for the placeholders).
///
/// ```
/// use pgha_core::CommandControllerConfig;
/// use std::time::Duration;
///
/// let config = CommandControllerConfig {
///     follow_command: Some("/etc/pgha/follow_primary.sh %d %h %p %D %m %H %M %P %r %R".into()),
///     ..CommandControllerConfig::new("/etc/pgha/failover.sh %d %h %p %D %m %H %M %P %r %R %N %S")
/// };
/// assert_eq!(config.timeout, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandControllerConfig {
    /// Promotes a standby: pgpool's `failover_command`. `%d %h %p %D` are
    /// the failed (old) primary, `-1`/empty when unknown, and `%m %H %r %R`
    /// the node to promote, so pgpool's `failover.sh` works unchanged.
    /// Must succeed when the node already is a primary. Required.
    pub promote_command: String,
    /// Re-points a standby (`%d`…) at the new primary (`%m`…): pgpool's
    /// `follow_primary_command`. Default: none (follow is unsupported).
    #[serde(default)]
    pub follow_command: Option<String>,
    /// Fences a node (`%d`…): demotes or stops it. Default: none (fencing
    /// is never confirmed).
    #[serde(default)]
    pub fence_command: Option<String>,
    /// Rewinds a former primary (`%d`…) and starts it as a standby of the
    /// primary (`%m`…). Default: none (rejoin is unsupported).
    #[serde(default)]
    pub rejoin_command: Option<String>,
    /// How long one command may run before it is killed (with every process
    /// it started) and counted as failed. Written with a unit: `"90s"`,
    /// `"500ms"`, `"2m"`. Default: `"60s"`.
    #[serde(default = "default_timeout", with = "duration_text")]
    pub timeout: Duration,
    /// Each node's data directory, for `%D` and `%R`; a node without one
    /// renders as an empty word. Default: empty.
    #[serde(default)]
    pub data_dirs: BTreeMap<NodeId, PathBuf>,
}

/// 60 s: pgpool runs failover commands without a limit, but a promotion
/// that takes a minute has hung (`pg_ctl promote -w` waits at most 60 s).
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

impl CommandControllerConfig {
    /// Only a promote command; everything else at its default.
    pub fn new(promote_command: impl Into<String>) -> Self {
        CommandControllerConfig {
            promote_command: promote_command.into(),
            follow_command: None,
            fence_command: None,
            rejoin_command: None,
            timeout: default_timeout(),
            data_dirs: BTreeMap::new(),
        }
    }
}

/// Durations as text with a unit: `"250ms"`, `"60s"`, `"5m"`, `"1h"`.
mod duration_text {
    use std::time::Duration;

    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_nanos() == 0 {
            s.serialize_str(&format!("{}s", d.as_secs()))
        } else {
            s.serialize_str(&format!("{}ms", d.as_millis()))
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "invalid duration {text:?}: write a number and a unit (ms, s, m, h), e.g. \"60s\""
            ))
        })
    }
}

/// `"250ms"`, `"60s"`, `"5m"`, `"1h"` (whitespace before the unit allowed).
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = |factor: u64| number.checked_mul(factor).map(Duration::from_secs);
    match unit.trim_start() {
        "ms" => Some(Duration::from_millis(number)),
        "s" => seconds(1),
        "m" | "min" => seconds(60),
        "h" => seconds(3600),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

    use super::*;
    use serde::de::value::{Error as DeError, StrDeserializer};
    use serde::de::IntoDeserializer;

    #[test]
    fn durations_need_a_unit() {
        let cases = [
            ("250ms", Some(Duration::from_millis(250))),
            ("60s", Some(Duration::from_secs(60))),
            ("60 s", Some(Duration::from_secs(60))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("60", None),
            ("s", None),
            ("-1s", None),
            ("1.5s", None),
            ("1d", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), expected, "{text:?}");
        }
    }

    #[test]
    fn timeout_deserializes_from_text() {
        let de: StrDeserializer<'_, DeError> = "1500ms".into_deserializer();
        assert_eq!(
            duration_text::deserialize(de).unwrap(),
            Duration::from_millis(1500)
        );
        let de: StrDeserializer<'_, DeError> = "60".into_deserializer();
        let error = duration_text::deserialize(de).unwrap_err().to_string();
        assert!(error.contains("write a number and a unit"), "{error}");
    }
}
