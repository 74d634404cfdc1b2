//! The one place pgha-vip uses `unsafe`: the link-layer socket addresses
//! (`sockaddr_ll`) a packet socket sends a gratuitous ARP or an ARP probe
//! to, and binds to while it listens for answers to a probe.
//!
//! socket2 opens and sends on packet sockets safely, but it can only build
//! IP and Unix socket addresses itself; a `sockaddr_ll` must be written
//! into its storage by hand. Nothing else here is unsafe, and the crate
//! denies `unsafe_code` everywhere else.
#![allow(unsafe_code)]

use std::mem::size_of;

use socket2::{SockAddr, SockAddrStorage};

/// The Ethernet broadcast address.
const BROADCAST: [u8; 6] = [0xff; 6];

/// The link-layer broadcast address of interface `ifindex`, for frames of
/// EtherType `ethertype` (host byte order).
pub(super) fn broadcast(ifindex: u32, ethertype: u16) -> SockAddr {
    link(ifindex, ethertype, BROADCAST)
}

/// Interface `ifindex` and EtherType `ethertype` without a peer: what a
/// packet socket binds to, to receive that EtherType on that interface
/// only (EtherType 0: nothing at all).
pub(super) fn interface(ifindex: u32, ethertype: u16) -> SockAddr {
    link(ifindex, ethertype, [0; 6])
}

fn link(ifindex: u32, ethertype: u16, peer: [u8; 6]) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `view_as` reinterprets the storage as a `sockaddr_ll`. The
    // storage is a `sockaddr_storage` (128 bytes, aligned for every socket
    // address type; `view_as` also asserts the size), `sockaddr_ll` is a
    // plain C struct of integers for which every bit pattern — the zeros
    // the storage holds included — is a valid value, and the reference
    // does not outlive this block's use of `storage`.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = ethertype.to_be();
    ll.sll_ifindex = ifindex as i32;
    ll.sll_halen = peer.len() as u8;
    ll.sll_addr[..peer.len()].copy_from_slice(&peer);
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `SockAddr::new` trusts that the first `len` bytes of the
    // storage are an initialised socket address of the family it names:
    // they are the `sockaddr_ll` written above (family `AF_PACKET`), and
    // `len` is exactly its size.
    unsafe { SockAddr::new(storage, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_packet_address_of_its_size() {
        let addr = broadcast(7, 0x0806);
        assert_eq!(addr.family(), libc::AF_PACKET as libc::sa_family_t);
        assert_eq!(addr.len() as usize, size_of::<libc::sockaddr_ll>());
        let bound = interface(7, 0x0806);
        assert_eq!(bound.family(), libc::AF_PACKET as libc::sa_family_t);
    }
}
