//! Gratuitous ARP and unsolicited neighbour advertisements: the packets
//! (pure) and the sockets that send them.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::link_address;

/// EtherType of ARP.
pub(crate) const ETH_P_ARP: u16 = 0x0806;
/// The all-nodes link-local multicast group, where unsolicited neighbour
/// advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Neighbour discovery packets must arrive with hop limit 255 (RFC 4861
/// 7.1.2): receivers drop any other, as proof the packet was not routed.
const ND_HOP_LIMIT: u32 = 255;

/// A gratuitous ARP: an ARP request from `ip` at `mac` about `ip` itself,
/// as `arping -U` sends it. The payload only: the kernel adds the Ethernet
/// header (to broadcast, from the interface's address).
///
/// Every Linux neighbour entry for `ip` is updated to `mac` on receipt,
/// even within its lock time (the kernel recognises a gratuitous ARP).
pub(crate) fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 28] {
    arp_request(mac, ip, ip)
}

/// An Ethernet/IPv4 ARP request from `sender_ip` at `mac` for `target_ip`
/// (target hardware address unknown): the payload only.
pub(crate) fn arp_request(mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    p[4] = 6; // hardware address length
    p[5] = 4; // protocol address length
    p[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    p[8..14].copy_from_slice(&mac); // sender MAC
    p[14..18].copy_from_slice(&sender_ip.octets());
    // p[18..24]: target MAC, zero (unknown)
    p[24..28].copy_from_slice(&target_ip.octets());
    p
}

/// An unsolicited neighbour advertisement (RFC 4861 4.4): `ip` is at
/// `mac`, Override set so that receivers replace what they cached. The
/// ICMPv6 message only; the kernel adds the IPv6 header and the checksum.
pub(crate) fn neighbour_advertisement(mac: [u8; 6], ip: Ipv6Addr) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = 136; // type: neighbour advertisement
    p[1] = 0; // code
              // p[2..4]: checksum, filled in by the kernel on ICMPv6 raw sockets
    p[4] = 0x20; // flags: Override (not Router, not Solicited)
    p[8..24].copy_from_slice(&ip.octets()); // target address
    p[24] = 2; // option: target link-layer address
    p[25] = 1; // its length, in units of 8 bytes
    p[26..32].copy_from_slice(&mac);
    p
}

/// The sockets announcements go out on, opened once (in the network
/// namespace of the thread that builds the mover).
#[derive(Debug)]
pub(crate) struct Announcer {
    /// `AF_PACKET`, `SOCK_DGRAM`, protocol 0: it sends with the EtherType
    /// given per packet and never receives (no frame is queued to it).
    packet: Socket,
    /// Raw ICMPv6; `None` where the host has no IPv6 (the error kept).
    icmp6: Result<Socket, String>,
}

impl Announcer {
    pub(crate) fn open() -> std::io::Result<Self> {
        let packet = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(0)))?;
        packet.set_nonblocking(true)?;
        let icmp6 = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                s.set_multicast_hops_v6(ND_HOP_LIMIT)?;
                s.set_unicast_hops_v6(ND_HOP_LIMIT)?;
                Ok(s)
            })
            .map_err(|e| e.to_string());
        Ok(Announcer { packet, icmp6 })
    }

    /// Broadcasts a gratuitous ARP for `ip` on interface `ifindex`.
    pub(crate) fn arp(&self, ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> std::io::Result<()> {
        let packet = gratuitous_arp(mac, ip);
        let to = link_address::broadcast(ifindex, ETH_P_ARP);
        self.packet.send_to(&packet, &to).map(drop)
    }

    /// Sends an unsolicited neighbour advertisement for `ip` to all nodes
    /// on interface `ifindex`.
    pub(crate) fn neighbour(
        &self,
        ifindex: u32,
        mac: [u8; 6],
        ip: Ipv6Addr,
    ) -> std::io::Result<()> {
        let socket = self.icmp6.as_ref().map_err(|e| {
            std::io::Error::other(format!("no ICMPv6 socket (IPv6 unavailable?): {e}"))
        })?;
        let packet = neighbour_advertisement(mac, ip);
        let to = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, ifindex));
        socket.send_to(&packet, &to).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    #[test]
    fn gratuitous_arp_is_a_request_about_itself() {
        let p = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 50));
        assert_eq!(
            p,
            [
                0, 1, 8, 0, 6, 4, 0, 1, // Ethernet/IPv4, request
                0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, 192, 0, 2, 50, // sender
                0, 0, 0, 0, 0, 0, 192, 0, 2, 50, // target
            ]
        );
    }

    #[test]
    fn neighbour_advertisement_overrides_with_our_address() {
        let ip: Ipv6Addr = "2001:db8::50".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        let p = neighbour_advertisement(MAC, ip);
        assert_eq!(&p[..8], &[136, 0, 0, 0, 0x20, 0, 0, 0]);
        assert_eq!(&p[8..24], &ip.octets());
        assert_eq!(&p[24..], &[2, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
    }
}
