//! [`AddressMover`]: the trait every way of moving a virtual IP implements.

use std::time::Duration;

use async_trait::async_trait;

use crate::{Error, VipAddress};

/// What [`AddressMover::probe_link`] learned about an address on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProbe {
    /// Another host answered that it has the address.
    Answered,
    /// Nobody answered within the time listened.
    Silent,
    /// The mover has no way to ask.
    CannotTell,
}

/// Adds, keeps, removes and announces a virtual IP on this host.
///
/// Object-safe, so a daemon holds an `Arc<dyn AddressMover>` chosen from
/// configuration: [`NetlinkMover`](crate::NetlinkMover) (the default on
/// Linux) or [`CommandMover`](crate::CommandMover) (pgpool's `if_up_cmd`,
/// `if_down_cmd`, `arping_cmd`). [`VipKeeper`](crate::VipKeeper) drives one
/// from a lease.
///
/// # Contract
///
/// * Every call is idempotent. `acquire` of an address already held renews
///   it; `release` of an address not held (or whose interface is gone) is
///   `Ok`; `renew` of an address not held acquires it.
/// * `lifetime` is how long the address may stay without a renewal. A
///   mover whose [`enforces_lifetime`](Self::enforces_lifetime) is `true`
///   makes the address disappear by itself once it runs out — even if this
///   process is killed, frozen or cut off — and never keeps it longer than
///   asked (it may round down). Others ignore it.
/// * `acquire` does not announce: the caller calls
///   [`announce`](Self::announce) (one gratuitous ARP or unsolicited
///   neighbour advertisement, or one run of the announce command) as often
///   as it wants clients told.
/// * `holds` reports what the host has now, not what the mover remembers.
/// * [`probe_link`](Self::probe_link) asks the link whether another host
///   has the address now; see there. By default the mover cannot tell.
/// * Errors name the address and what was being done; an interface that
///   does not exist, an address configured elsewhere and a refusal for lack
///   of privileges are [`Error::InterfaceMissing`],
///   [`Error::AddressElsewhere`] and [`Error::NotPermitted`] where the
///   mover can tell them apart.
///
/// `pgha_vip::testing::conformance` (feature `testing`) checks all of this
/// against a real host.
#[async_trait]
pub trait AddressMover: Send + Sync {
    /// Adds `addr` for `lifetime`, or renews it if it is already held.
    async fn acquire(&self, addr: &VipAddress, lifetime: Duration) -> Result<(), Error>;

    /// Extends `addr`'s lifetime to `lifetime` from now (adds it if it is
    /// not held). By default, [`acquire`](Self::acquire).
    async fn renew(&self, addr: &VipAddress, lifetime: Duration) -> Result<(), Error> {
        self.acquire(addr, lifetime).await
    }

    /// Removes `addr`; `Ok` if it was not there.
    async fn release(&self, addr: &VipAddress) -> Result<(), Error>;

    /// Tells the network once that `addr` is here now (gratuitous ARP for
    /// IPv4, unsolicited neighbour advertisement for IPv6), so that
    /// clients that cached another host's link-layer address for it come
    /// here at once.
    async fn announce(&self, addr: &VipAddress) -> Result<(), Error>;

    /// Whether this host has `addr` now.
    async fn holds(&self, addr: &VipAddress) -> Result<bool, Error>;

    /// Asks the address's link whether another host has `addr` now: one
    /// question on `addr`'s interface, then `listen` for an answer.
    ///
    /// * [`LinkProbe::Answered`]: another host on the link said, within
    ///   `listen` of the question, that it has `addr` (an answer from this
    ///   host does not count).
    /// * [`LinkProbe::Silent`]: the question went out on the interface and
    ///   nothing naming `addr` came back within `listen`. Every host on the
    ///   link that has `addr` and whose kernel runs would have answered;
    ///   a mover that cannot promise that must not return `Silent`.
    /// * [`LinkProbe::CannotTell`]: this mover (or this kind of address or
    ///   interface) has no such question. The default.
    ///
    /// A caller treats an error like `CannotTell`: it learns nothing.
    async fn probe_link(&self, addr: &VipAddress, listen: Duration) -> Result<LinkProbe, Error> {
        let _ = (addr, listen);
        Ok(LinkProbe::CannotTell)
    }

    /// Whether an address disappears by itself when its lifetime runs out.
    /// Default: `false`.
    fn enforces_lifetime(&self) -> bool {
        false
    }

    /// A short name for logs.
    fn name(&self) -> &str;
}
