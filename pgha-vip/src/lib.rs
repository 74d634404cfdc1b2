//! # pgha-vip
//!
//! The cluster's client address (a virtual IP) on whichever host holds the
//! lease, and nowhere else — even when the old holder is killed, frozen or
//! cut off.
//!
//! * [`AddressMover`]: adds, renews, removes and announces an address
//!   ([`VipAddress`]: IP, prefix length, interface). Idempotent;
//!   object-safe, chosen at run time as `Arc<dyn AddressMover>`.
//! * [`NetlinkMover`] (the default, Linux): rtnetlink, with a **kernel
//!   lifetime** on the address so the kernel removes it by itself when its
//!   holder stops renewing; gratuitous ARP (IPv4) or unsolicited neighbour
//!   advertisement (IPv6) on raw sockets.
//! * [`CommandMover`]: pgpool-II's `if_up_cmd`, `if_down_cmd`,
//!   `arping_cmd`, for clouds and unusual networks (no lifetime).
//! * [`VipKeeper`]: given a `watch` of the local lease (`Some(valid
//!   until)` while this node holds it — the watchdog provides it), holds
//!   the address exactly while the lease is valid and announces it.
//!   [`KeeperPlan`] is its pure decision part.
//! * [`follow_leader_lease`]: the watchdog's short leader lease → the
//!   lease a keeper holds the address by: stretched on the holder, delayed
//!   on a new leader until the old holder's copy must be gone, or until
//!   nobody on the link answers for it ([`AddressMover::probe_link`]).
//!   [`Handover`] is its pure part.
//!
//! pgha-vip depends on pgha-core only; the daemon wires a keeper to the
//! watchdog's lease.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pgha_vip::{AddressMover, NetlinkMover, VipAddress, VipKeeper};
//! use tokio::sync::watch;
//! use tokio::time::Instant;
//!
//! # #[tokio::main] async fn main() -> Result<(), pgha_vip::Error> {
//! let vip = VipAddress::new([192, 0, 2, 50], 24, "eth0")?;
//! let mover: Arc<dyn AddressMover> = Arc::new(NetlinkMover::new()?);
//! let keeper = VipKeeper::new(Arc::clone(&mover), vip.clone());
//! let mut status = keeper.status();
//!
//! let (lease, lease_rx) = watch::channel(None);
//! tokio::spawn(keeper.run(lease_rx, std::future::pending()));
//!
//! // This node wins the lease for 4 s: the address is added with a 3 s
//! // kernel lifetime (the lease less a 1 s margin) and announced.
//! lease.send_replace(Some(Instant::now() + Duration::from_secs(4)));
//! status.wait_for(|s| s.held).await.ok();
//! assert!(mover.holds(&vip).await?);
//!
//! // The lease is lost: the address is removed at once. Had this process
//! // been killed instead, the kernel would have removed it within 3 s.
//! lease.send_replace(None);
//! status.wait_for(|s| !s.held).await.ok();
//! # Ok(()) }
//! ```
//!
//! Everything needs root (`CAP_NET_ADMIN`, and `CAP_NET_RAW` for the
//! announcements). The crate denies `unsafe` except in one module that
//! builds the link-layer address gratuitous ARP is sent to.

mod address;
mod command;
mod error;
mod handover;
mod keeper;
mod mover;
mod netlink;
#[cfg(feature = "testing")]
pub mod testing;

pub use address::VipAddress;
pub use command::{CommandMover, CommandMoverConfig};
pub use error::Error;
pub use handover::{
    follow as follow_leader_lease, Handover, HandoverConfig, SILENT_PROBES_TO_TAKE,
};
pub use keeper::{KeeperCommand, KeeperConfig, KeeperPlan, KeeperStatus, VipKeeper};
pub use mover::{AddressMover, LinkProbe};
pub use netlink::NetlinkMover;
