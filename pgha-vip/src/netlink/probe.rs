//! RFC 5227 ARP probes: is an IPv4 address still on another host of the
//! link? The packets (pure) and the socket that sends one and listens.
//!
//! A probe is an ARP request for the address from sender IP 0.0.0.0, so
//! that it teaches no neighbour table anything. Linux answers one for any
//! address it has (`arp_process`: a request with sender 0.0.0.0 whose
//! target is a local address is answered unless `arp_ignore` says not —
//! at 0 to 7 it answers for a global address on the receiving interface,
//! at 8 never; `arp_filter` does not apply), an expired address still
//! waiting for the kernel's periodic removal included, whether or not any
//! process on that host is running. A host with ARP off on the interface
//! (`ip link set … arp off`) or ARP dropped by a firewall does not
//! answer.

use std::io::Read;
use std::net::Ipv4Addr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::announce::{arp_request, ETH_P_ARP};
use super::link_address;

/// An ARP probe (RFC 5227 2.1.1): a request from `mac` with sender IP
/// 0.0.0.0 for `ip`. The payload only: the kernel adds the Ethernet header.
pub(crate) fn arp_probe(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 28] {
    arp_request(mac, Ipv4Addr::UNSPECIFIED, ip)
}

/// Whether the ARP payload `packet` says another host has `ip`: any
/// Ethernet/IPv4 ARP request or reply with `ip` as its sender IP (the
/// answer to a probe, and the holder's own gratuitous ARP alike, RFC 5227
/// 2.1.1), from a hardware address other than `own_mac` (this host's own
/// packets prove nothing about others).
pub(crate) fn claims(packet: &[u8], ip: Ipv4Addr, own_mac: [u8; 6]) -> bool {
    let Some(p) = packet.get(..28) else {
        return false;
    };
    let ethernet_ipv4 = p[0..2] == [0, 1] && p[2..4] == [8, 0] && p[4] == 6 && p[5] == 4;
    let request_or_reply = p[6..8] == [0, 1] || p[6..8] == [0, 2];
    ethernet_ipv4 && request_or_reply && p[14..18] == ip.octets() && p[8..14] != own_mac
}

/// How often a probe looks for answers while it listens.
const POLL: Duration = Duration::from_millis(5);

/// A packet socket, opened once (in the mover's network namespace), that
/// listens for ARP only while a probe runs.
#[derive(Debug)]
pub(crate) struct Prober {
    /// `AF_PACKET`, `SOCK_DGRAM`, protocol 0 — it receives nothing — until
    /// a probe binds it to ARP on one interface; bound back to protocol 0
    /// after, so that no frame is queued to it between probes.
    socket: Socket,
    /// One probe at a time: they share the socket.
    busy: tokio::sync::Mutex<()>,
}

/// Binds the socket back to protocol 0 when a probe ends, however it ends
/// (a cancelled probe included).
struct Unbind<'a> {
    socket: &'a Socket,
    ifindex: u32,
}

impl Drop for Unbind<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.socket.bind(&link_address::interface(self.ifindex, 0)) {
            tracing::warn!(%error, "unbinding the ARP probe socket");
        }
    }
}

impl Prober {
    pub(crate) fn open() -> std::io::Result<Self> {
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(0)))?;
        socket.set_nonblocking(true)?;
        Ok(Prober {
            socket,
            busy: tokio::sync::Mutex::new(()),
        })
    }

    /// Probes for `ip` on interface `ifindex` (whose hardware address is
    /// `mac`) and listens `listen`: whether another host claimed it.
    pub(crate) async fn probe(
        &self,
        ifindex: u32,
        mac: [u8; 6],
        ip: Ipv4Addr,
        listen: Duration,
    ) -> std::io::Result<bool> {
        let _one_at_a_time = self.busy.lock().await;
        self.socket
            .bind(&link_address::interface(ifindex, ETH_P_ARP))?;
        let _unbind = Unbind {
            socket: &self.socket,
            ifindex,
        };
        let mut buf = [0u8; 1500];
        // Frames queued before this probe (a cancelled one's) say nothing
        // about now.
        while read(&self.socket, &mut buf)?.is_some() {}
        let deadline = tokio::time::Instant::now() + listen;
        self.socket.send_to(
            &arp_probe(mac, ip),
            &link_address::broadcast(ifindex, ETH_P_ARP),
        )?;
        // Polled, not awaited on the reactor: tokio's readiness for a
        // descriptor it does not own takes `unsafe` (its `AsyncFd`
        // registration), which this crate keeps to one module; a frame
        // queued by the deadline counts however late it is read, and a
        // few polls while a new leader waits cost nothing.
        loop {
            while let Some(n) = read(&self.socket, &mut buf)? {
                if claims(&buf[..n], ip, mac) {
                    return Ok(true);
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep_until((now + POLL).min(deadline)).await;
        }
    }
}

/// One frame, or `None` when none is queued.
fn read(socket: &Socket, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    let mut socket = socket;
    match socket.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    const OTHER: [u8; 6] = [0x02, 0x00, 0x5e, 0x40, 0x50, 0x60];
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

    /// An ARP packet: operation, sender MAC and IP, target MAC and IP.
    fn arp(op: u16, sha: [u8; 6], sip: Ipv4Addr, tha: [u8; 6], tip: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4];
        p.extend_from_slice(&op.to_be_bytes());
        p.extend_from_slice(&sha);
        p.extend_from_slice(&sip.octets());
        p.extend_from_slice(&tha);
        p.extend_from_slice(&tip.octets());
        p
    }

    #[test]
    fn a_probe_is_a_request_from_nobody_for_the_address() {
        assert_eq!(
            arp_probe(MAC, VIP),
            [
                0, 1, 8, 0, 6, 4, 0, 1, // Ethernet/IPv4, request
                0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, 0, 0, 0, 0, // sender: 0.0.0.0
                0, 0, 0, 0, 0, 0, 198, 18, 0, 100, // target: the address
            ]
        );
    }

    #[test]
    fn linuxs_answer_to_a_probe_claims_the_address() {
        // What arp_process sends back: a reply from the address, to the
        // prober's hardware address and 0.0.0.0.
        let reply = arp(2, OTHER, VIP, MAC, Ipv4Addr::UNSPECIFIED);
        assert!(claims(&reply, VIP, MAC));
        // Padded to the Ethernet minimum, as it arrives.
        let mut padded = reply.clone();
        padded.resize(46, 0);
        assert!(claims(&padded, VIP, MAC));
    }

    #[test]
    fn a_holders_gratuitous_arp_claims_the_address() {
        let garp = super::super::announce::gratuitous_arp(OTHER, VIP);
        assert!(claims(&garp, VIP, MAC));
    }

    #[test]
    fn nothing_else_claims_it() {
        let other_ip = Ipv4Addr::new(198, 18, 0, 101);
        let cases = [
            // Our own probe, looped back.
            arp_probe(MAC, VIP).to_vec(),
            // Another host's probe for it: asking, not having.
            arp_probe(OTHER, VIP).to_vec(),
            // Answers about another address.
            arp(2, OTHER, other_ip, MAC, Ipv4Addr::UNSPECIFIED),
            // From our own hardware address.
            arp(2, MAC, VIP, MAC, Ipv4Addr::UNSPECIFIED),
            // Truncated.
            arp(2, OTHER, VIP, MAC, Ipv4Addr::UNSPECIFIED)[..20].to_vec(),
            // Not an operation claims are made with (RARP reply).
            arp(4, OTHER, VIP, MAC, Ipv4Addr::UNSPECIFIED),
        ];
        for (i, packet) in cases.iter().enumerate() {
            assert!(!claims(packet, VIP, MAC), "case {i}: {packet:?}");
        }
        let mut not_ethernet = arp(2, OTHER, VIP, MAC, Ipv4Addr::UNSPECIFIED);
        not_ethernet[1] = 6; // IEEE 802
        assert!(!claims(&not_ethernet, VIP, MAC));
        assert!(!claims(&[], VIP, MAC));
    }
}
