//! PostgreSQL WAL positions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A position in the write-ahead log (a `pg_lsn`), e.g. `0/3000060`.
///
/// PostgreSQL writes it as two hexadecimal numbers separated by a slash: the
/// high and the low 32 bits of a 64-bit byte position. Serde uses the same
/// text form, so a JSON status reads like `pg_stat_replication`.
///
/// ```
/// use pgha_core::Lsn;
///
/// let primary: Lsn = "0/3000060".parse()?;
/// let standby: Lsn = "0/3000000".parse()?;
/// assert_eq!(primary.bytes_behind(standby), 0);
/// assert_eq!(standby.bytes_behind(primary), 0x60);
/// assert_eq!(primary.to_string(), "0/3000060");
/// # Ok::<(), pgha_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The start of the log, `0/0`.
    pub const ZERO: Lsn = Lsn(0);

    /// How many bytes of WAL `self` still lacks to reach `target`: zero when
    /// `self` is at or past it.
    pub fn bytes_behind(self, target: Lsn) -> u64 {
        target.0.saturating_sub(self.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |problem| Error::InvalidLsn {
            input: s.to_owned(),
            problem,
        };
        let (high, low) = s
            .split_once('/')
            .ok_or_else(|| invalid("expected two hexadecimal numbers separated by '/'"))?;
        let half = |part: &str| {
            // from_str_radix accepts a leading '+', PostgreSQL does not.
            if part.is_empty() || part.len() > 8 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid("each half must be 1 to 8 hexadecimal digits"));
            }
            u32::from_str_radix(part, 16).map_err(|_| invalid("not hexadecimal"))
        };
        let (high, low) = (half(high)?, half(low)?);
        Ok(Lsn((u64::from(high) << 32) | u64::from(low)))
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use serde::de::value::{Error as DeError, StrDeserializer};
    use serde::de::IntoDeserializer;

    #[test]
    fn parses_postgres_text_form() {
        assert_eq!("0/3000060".parse::<Lsn>().unwrap(), Lsn(0x300_0060));
        assert_eq!("16/B374D848".parse::<Lsn>().unwrap(), Lsn(0x16_B374_D848));
        assert_eq!("ffffffff/ffffffff".parse::<Lsn>().unwrap(), Lsn(u64::MAX));
    }

    #[test]
    fn displays_like_postgres() {
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!(Lsn::ZERO.to_string(), "0/0");
    }

    #[test]
    fn rejects_malformed_text_with_the_input_in_the_message() {
        for bad in [
            "",
            "0",
            "0/",
            "/0",
            "0/3000060/1",
            "g/0",
            "+1/0",
            "1/123456789",
            " 0/1",
        ] {
            let err = bad.parse::<Lsn>().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidLsn { input, .. } if input == bad),
                "{bad:?} gave {err:?}"
            );
            assert!(err.to_string().contains("invalid LSN"), "{err}");
        }
    }

    #[test]
    fn display_and_parse_round_trip() {
        for raw in [
            0,
            1,
            0xFFFF_FFFF,
            0x1_0000_0000,
            0xDEAD_BEEF_0000_0001,
            u64::MAX,
        ] {
            assert_eq!(Lsn(raw).to_string().parse::<Lsn>().unwrap(), Lsn(raw));
        }
    }

    #[test]
    fn bytes_behind_saturates_at_zero() {
        assert_eq!(Lsn(100).bytes_behind(Lsn(350)), 250);
        assert_eq!(Lsn(350).bytes_behind(Lsn(100)), 0);
    }

    #[test]
    fn deserializes_from_the_text_form_only() {
        let de: StrDeserializer<'_, DeError> = "1/0".into_deserializer();
        assert_eq!(Lsn::deserialize(de).unwrap(), Lsn(1 << 32));
        let de: StrDeserializer<'_, DeError> = "nope".into_deserializer();
        assert!(Lsn::deserialize(de)
            .unwrap_err()
            .to_string()
            .contains("nope"));
    }
}
