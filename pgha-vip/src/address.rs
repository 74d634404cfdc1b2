//! [`VipAddress`]: which address, how wide its subnet, on which interface.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A virtual IP as pgha adds it: the address, its prefix length (the
/// `/24` of pgpool's `ip addr add $_IP_$/24`) and the interface it lives
/// on.
///
/// ```
/// use pgha_vip::VipAddress;
///
/// let vip = VipAddress::new([192, 0, 2, 50], 24, "eth0")?;
/// assert_eq!(vip.to_string(), "192.0.2.50/24 on eth0");
/// assert!(VipAddress::new([192, 0, 2, 50], 33, "eth0").is_err());
/// assert!(VipAddress::new([192, 0, 2, 50], 24, "not an interface").is_err());
/// # Ok::<(), pgha_vip::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawVipAddress", into = "RawVipAddress")]
pub struct VipAddress {
    ip: IpAddr,
    prefix_len: u8,
    interface: String,
}

/// Longest interface name Linux accepts (`IFNAMSIZ` less the NUL).
const MAX_INTERFACE_LEN: usize = 15;

impl VipAddress {
    /// The address `ip`/`prefix_len` on `interface`; fails with
    /// [`Error::Config`] if the prefix is longer than the address (32 for
    /// IPv4, 128 for IPv6) or the name is not one Linux would give an
    /// interface.
    pub fn new(
        ip: impl Into<IpAddr>,
        prefix_len: u8,
        interface: impl Into<String>,
    ) -> Result<Self, Error> {
        let ip = ip.into();
        let interface = interface.into();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(Error::Config {
                what: format!("virtual IP {ip}/{prefix_len}: the prefix length is more than {max}"),
            });
        }
        let bad_name = interface.is_empty()
            || interface.len() > MAX_INTERFACE_LEN
            || interface == "."
            || interface == ".."
            || interface
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if bad_name {
            return Err(Error::Config {
                what: format!(
                    "virtual IP {ip}/{prefix_len}: {interface:?} is not an interface name \
                     (1 to 15 characters, no '/', ':' or spaces)"
                ),
            });
        }
        Ok(VipAddress {
            ip,
            prefix_len,
            interface,
        })
    }

    /// The address itself.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Its prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The interface it is added to.
    pub fn interface(&self) -> &str {
        &self.interface
    }
}

impl fmt::Display for VipAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} on {}", self.ip, self.prefix_len, self.interface)
    }
}

/// How a [`VipAddress`] is written in configuration:
/// `{ address = "192.0.2.50/24", interface = "eth0" }`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVipAddress {
    address: String,
    interface: String,
}

impl TryFrom<RawVipAddress> for VipAddress {
    type Error = Error;

    fn try_from(raw: RawVipAddress) -> Result<Self, Error> {
        let invalid = || Error::Config {
            what: format!(
                "virtual IP {:?}: write it as ADDRESS/PREFIX, e.g. \"192.0.2.50/24\"",
                raw.address
            ),
        };
        let (ip, prefix) = raw.address.split_once('/').ok_or_else(invalid)?;
        let ip: IpAddr = ip.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        VipAddress::new(ip, prefix, raw.interface)
    }
}

impl From<VipAddress> for RawVipAddress {
    fn from(vip: VipAddress) -> Self {
        RawVipAddress {
            address: format!("{}/{}", vip.ip, vip.prefix_len),
            interface: vip.interface,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

    use super::*;

    #[test]
    fn reads_and_writes_configuration() {
        let vip: VipAddress =
            toml::from_str("address = \"192.0.2.50/24\"\ninterface = \"ens33\"").unwrap();
        assert_eq!(vip, VipAddress::new([192, 0, 2, 50], 24, "ens33").unwrap());
        assert_eq!(
            toml::to_string(&vip).unwrap(),
            "address = \"192.0.2.50/24\"\ninterface = \"ens33\"\n"
        );
        let v6: VipAddress =
            toml::from_str("address = \"2001:db8::50/64\"\ninterface = \"eth0\"").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::50/64 on eth0");
    }

    #[test]
    fn rejects_what_cannot_be_an_address() {
        // (address, interface, part of the error)
        let cases = [
            ("192.0.2.50", "eth0", "ADDRESS/PREFIX"),
            ("192.0.2.50/33", "eth0", "more than 32"),
            ("2001:db8::50/129", "eth0", "more than 128"),
            ("192.0.2.500/24", "eth0", "ADDRESS/PREFIX"),
            ("192.0.2.50/24", "", "not an interface name"),
            ("192.0.2.50/24", "eth0:0", "not an interface name"),
            (
                "192.0.2.50/24",
                "a-very-long-interface",
                "not an interface name",
            ),
        ];
        for (address, interface, expected) in cases {
            let text = format!("address = {address:?}\ninterface = {interface:?}");
            let error = toml::from_str::<VipAddress>(&text).unwrap_err().to_string();
            assert!(error.contains(expected), "{address} {interface}: {error}");
        }
        assert!(toml::from_str::<VipAddress>(
            "address = \"192.0.2.50/24\"\ninterface = \"eth0\"\nlabel = \"eth0:0\""
        )
        .is_err());
    }
}
