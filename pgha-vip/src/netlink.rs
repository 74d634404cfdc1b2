//! [`NetlinkMover`]: addresses through rtnetlink with a kernel-enforced
//! lifetime, announcements on raw sockets. Linux only.

mod announce;
mod link_address;
mod probe;

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::Handle;
use tokio::task::JoinHandle;

use crate::{AddressMover, Error, LinkProbe, VipAddress};
use announce::Announcer;
use probe::Prober;

/// The default [`AddressMover`] on Linux: the address is added, renewed
/// and removed over rtnetlink (no `ip` command), announced by gratuitous
/// ARP (IPv4) or unsolicited neighbour advertisement (IPv6).
///
/// **The kernel enforces the lifetime.** The address is added with a valid
/// and preferred lifetime (`IFA_CACHEINFO`, what `ip addr add … valid_lft`
/// sets) and each renewal replaces it, so a holder that is killed, frozen
/// or cut off loses the address by itself. The kernel counts whole
/// seconds: a lifetime is rounded *down* (never kept longer than asked),
/// and one under a second is refused ([`Error::Lifetime`]). Linux removes
/// an expired address from a periodic check, measured here 10–250 ms late
/// (up to about 1 s when other addresses with lifetimes change on the
/// machine: the check then runs at most once a second);
/// [`KeeperConfig::margin`](crate::KeeperConfig::margin) covers that.
///
/// IPv6 addresses are added without duplicate address detection
/// (`IFA_F_NODAD`): usable, and announced, at once.
///
/// An announcement is one packet, sent from the interface's own hardware
/// address: for IPv4 an ARP request for the address from the address
/// (`arping -U`) to the broadcast address, on an `AF_PACKET` socket that
/// never receives; for IPv6 a neighbour advertisement with the Override
/// flag to all nodes (`ff02::1`), hop limit 255, on a raw ICMPv6 socket.
/// Interfaces without a 6-byte hardware address (loopback, tunnels) are
/// not announced on.
///
/// [`probe_link`](AddressMover::probe_link) sends, for IPv4, an RFC 5227
/// ARP probe (an ARP request for the address from 0.0.0.0, to the
/// broadcast address) and listens on the interface for an ARP packet from
/// another hardware address with the address as its sender: Linux answers
/// a probe for every address it has (`arp_ignore` 0 to 7; not 8, nor with ARP off or dropped), one
/// expired but not yet removed included. For IPv6 (neighbour
/// solicitations for duplicate address detection are not sent yet) and on
/// interfaces without a hardware address it cannot tell.
///
/// It works in the network namespace of the thread that built it (its
/// netlink and raw sockets are opened by [`new`](Self::new)), and needs
/// `CAP_NET_ADMIN` and `CAP_NET_RAW` (root).
///
/// ```no_run
/// use pgha_vip::{AddressMover, NetlinkMover, VipAddress};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pgha_vip::Error> {
/// let mover = NetlinkMover::new()?;
/// let vip = VipAddress::new([192, 0, 2, 50], 24, "eth0")?;
/// mover.acquire(&vip, Duration::from_secs(3)).await?; // gone in 3 s unless renewed
/// mover.announce(&vip).await?;
/// assert!(mover.holds(&vip).await?);
/// mover.release(&vip).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NetlinkMover {
    handle: Handle,
    connection: JoinHandle<()>,
    announcer: Announcer,
    prober: Prober,
    /// One address dump at a time: the kernel answers `EBUSY` to a second
    /// dump on a netlink socket while one is running (a keeper's renewal
    /// beside its announcement, two callers of `holds`).
    dumping: tokio::sync::Mutex<()>,
}

/// An interface, as the mover needs it.
struct Link {
    index: u32,
    mac: Option<[u8; 6]>,
}

/// The kernel's "forever" lifetime.
const INFINITY_LIFE_TIME: u32 = u32::MAX;
/// `EADDRNOTAVAIL`, as the kernel answers a delete of a missing address.
const NOT_FOUND: [i32; 2] = [libc::EADDRNOTAVAIL, libc::ENOENT];

impl NetlinkMover {
    /// Opens the netlink and raw sockets (in the calling thread's network
    /// namespace) and starts the netlink connection on the current Tokio
    /// runtime; it stops when the mover is dropped. Fails with
    /// [`Error::NotPermitted`] without `CAP_NET_RAW`.
    pub fn new() -> Result<Self, Error> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::io("opening a netlink socket".to_string(), e))?;
        let announcer = Announcer::open()
            .map_err(|e| Error::io("opening a packet socket for gratuitous ARP".to_string(), e))?;
        let prober = Prober::open()
            .map_err(|e| Error::io("opening a packet socket for ARP probes".to_string(), e))?;
        Ok(NetlinkMover {
            handle,
            connection: tokio::spawn(connection),
            announcer,
            prober,
            dumping: tokio::sync::Mutex::new(()),
        })
    }

    /// The interface of `addr`, or [`Error::InterfaceMissing`].
    async fn link(&self, operation: &'static str, addr: &VipAddress) -> Result<Link, Error> {
        let missing = || Error::InterfaceMissing {
            operation,
            addr: addr.to_string(),
            interface: addr.interface().to_string(),
        };
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(addr.interface().to_string())
            .execute();
        let message = match links.try_next().await {
            Ok(Some(message)) => message,
            Ok(None) => return Err(missing()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => return Err(missing()),
            Err(e) => return Err(netlink_error(operation, addr, &e)),
        };
        let mac = message.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        });
        Ok(Link {
            index: message.header.index,
            mac,
        })
    }

    /// Every address entry for `ip` on this host, on any interface.
    async fn entries(
        &self,
        operation: &'static str,
        addr: &VipAddress,
    ) -> Result<Vec<AddressMessage>, Error> {
        let _one_at_a_time = self.dumping.lock().await;
        self.handle
            .address()
            .get()
            .set_address_filter(addr.ip())
            .execute()
            .try_collect()
            .await
            .map_err(|e| netlink_error(operation, addr, &e))
    }

    /// The name of interface `index`, for an error message.
    async fn interface_name(&self, index: u32) -> String {
        let mut links = self.handle.link().get().match_index(index).execute();
        let name = match links.try_next().await {
            Ok(Some(message)) => message.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(name) => Some(name.clone()),
                _ => None,
            }),
            _ => None,
        };
        name.unwrap_or_else(|| format!("interface #{index}"))
    }

    async fn add(
        &self,
        operation: &'static str,
        addr: &VipAddress,
        lifetime: Duration,
    ) -> Result<(), Error> {
        let seconds = kernel_lifetime(lifetime).ok_or_else(|| Error::Lifetime {
            operation,
            addr: addr.to_string(),
            lifetime,
        })?;
        let link = self.link(operation, addr).await?;
        for entry in self.entries(operation, addr).await? {
            let (index, prefix) = (entry.header.index, entry.header.prefix_len);
            if index != link.index || prefix != addr.prefix_len() {
                let on = if index == link.index {
                    addr.interface().to_string()
                } else {
                    self.interface_name(index).await
                };
                return Err(Error::AddressElsewhere {
                    operation,
                    addr: addr.to_string(),
                    found: format!("{}/{prefix} on {on}", addr.ip()),
                });
            }
        }
        // Replace (NLM_F_REPLACE | NLM_F_CREATE): adds the address, or
        // gives the existing one the new lifetime, counted from now.
        let mut request = self
            .handle
            .address()
            .add(link.index, addr.ip(), addr.prefix_len())
            .replace();
        let mut cache_info = CacheInfo::default();
        cache_info.ifa_valid = seconds;
        cache_info.ifa_preferred = seconds;
        let message = request.message_mut();
        message
            .attributes
            .push(AddressAttribute::CacheInfo(cache_info));
        if addr.ip().is_ipv6() {
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request
            .execute()
            .await
            .map_err(|e| netlink_error(operation, addr, &e))?;
        tracing::debug!(%addr, lifetime_s = seconds, operation, "address set");
        Ok(())
    }
}

impl Drop for NetlinkMover {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

#[async_trait]
impl AddressMover for NetlinkMover {
    async fn acquire(&self, addr: &VipAddress, lifetime: Duration) -> Result<(), Error> {
        self.add("acquire", addr, lifetime).await
    }

    async fn renew(&self, addr: &VipAddress, lifetime: Duration) -> Result<(), Error> {
        self.add("renew", addr, lifetime).await
    }

    async fn release(&self, addr: &VipAddress) -> Result<(), Error> {
        let link = match self.link("release", addr).await {
            Ok(link) => link,
            Err(Error::InterfaceMissing { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in self.entries("release", addr).await? {
            if entry.header.index != link.index || entry.header.prefix_len != addr.prefix_len() {
                continue;
            }
            match self.handle.address().del(entry).execute().await {
                Ok(()) => tracing::debug!(%addr, "address removed"),
                // Expired or removed meanwhile: released all the same.
                Err(e) if errno(&e).is_some_and(|n| NOT_FOUND.contains(&n)) => {}
                Err(e) => return Err(netlink_error("release", addr, &e)),
            }
        }
        Ok(())
    }

    async fn announce(&self, addr: &VipAddress) -> Result<(), Error> {
        let link = self.link("announce", addr).await?;
        let Some(mac) = link.mac else {
            tracing::debug!(%addr, "no hardware address on the interface: nothing to announce");
            return Ok(());
        };
        let sent = match addr.ip() {
            IpAddr::V4(ip) => self.announcer.arp(link.index, mac, ip),
            IpAddr::V6(ip) => self.announcer.neighbour(link.index, mac, ip),
        };
        sent.map_err(|e| Error::io(format!("announce {addr}"), e))
    }

    async fn holds(&self, addr: &VipAddress) -> Result<bool, Error> {
        let link = match self.link("holds", addr).await {
            Ok(link) => link,
            Err(Error::InterfaceMissing { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(self
            .entries("holds", addr)
            .await?
            .iter()
            .any(|e| e.header.index == link.index && e.header.prefix_len == addr.prefix_len()))
    }

    async fn probe_link(&self, addr: &VipAddress, listen: Duration) -> Result<LinkProbe, Error> {
        let IpAddr::V4(ip) = addr.ip() else {
            return Ok(LinkProbe::CannotTell);
        };
        let link = self.link("probe", addr).await?;
        let Some(mac) = link.mac else {
            return Ok(LinkProbe::CannotTell);
        };
        let answered = self
            .prober
            .probe(link.index, mac, ip, listen)
            .await
            .map_err(|e| Error::io(format!("probe for {addr}"), e))?;
        Ok(if answered {
            LinkProbe::Answered
        } else {
            LinkProbe::Silent
        })
    }

    fn enforces_lifetime(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "netlink"
    }
}

/// `lifetime` in the kernel's whole seconds, rounded down; `None` under a
/// second. Beyond `u32::MAX - 1` seconds (136 years), forever.
fn kernel_lifetime(lifetime: Duration) -> Option<u32> {
    match lifetime.as_secs() {
        0 => None,
        s => Some(u32::try_from(s).unwrap_or(INFINITY_LIFE_TIME)),
    }
}

/// The errno of a netlink error answer.
fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}

fn netlink_error(operation: &'static str, addr: &VipAddress, error: &rtnetlink::Error) -> Error {
    match errno(error) {
        Some(libc::EPERM) | Some(libc::EACCES) => Error::NotPermitted {
            what: format!("{operation} {addr}"),
        },
        Some(code) => Error::Netlink {
            operation,
            addr: addr.to_string(),
            message: std::io::Error::from_raw_os_error(code).to_string(),
        },
        None => Error::Netlink {
            operation,
            addr: addr.to_string(),
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_round_down_to_whole_seconds() {
        let cases = [
            (Duration::from_millis(999), None),
            (Duration::from_millis(1000), Some(1)),
            (Duration::from_millis(2999), Some(2)),
            (
                Duration::from_secs(u64::from(u32::MAX) + 5),
                Some(INFINITY_LIFE_TIME),
            ),
            (Duration::MAX, Some(INFINITY_LIFE_TIME)),
        ];
        for (lifetime, seconds) in cases {
            assert_eq!(kernel_lifetime(lifetime), seconds, "{lifetime:?}");
        }
    }
}
