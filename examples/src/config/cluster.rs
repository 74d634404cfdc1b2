//! `[watchdog]` and `[vip]`: the pgha nodes that agree through Raft, and
//! the address that moves to their leader.
//!
//! ```toml
//! [watchdog]
//! id = 1                                  # this member
//! state_dir = "/var/lib/pgha/watchdog"    # vote, log, record (fsync'd)
//! secret_file = "/etc/pgha/watchdog.key"  # or secret / secret_env
//! [[watchdog.member]]
//! id = 1
//! address = "198.18.0.10:7400"
//! [[watchdog.member]]
//! id = 2
//! address = "198.18.0.11:7400"
//! [[watchdog.member]]
//! id = 3
//! address = "198.18.0.12:7400"
//! witness = true
//!
//! [vip]
//! address = "198.18.0.100/24"
//! interface = "eth0"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use pgha_vip::{CommandMoverConfig, HandoverConfig, KeeperConfig, VipAddress};
use pgha_watchdog::{MemberId, Timing};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::resolve::Ctx;
use super::units::Dur;

/// `[watchdog]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogSection {
    /// This member's id (one of the `[[watchdog.member]]` ids).
    pub id: Spanned<MemberId>,
    /// Where this member keeps its Raft vote, log and record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<Spanned<PathBuf>>,
    /// Where this member answers its peers (default: its own member
    /// address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The secret every member shares (at least 16 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Spanned<String>>,
    /// An environment variable holding the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<Spanned<String>>,
    /// A file holding the secret (surrounding whitespace ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<Spanned<PathBuf>>,
    /// Leader heartbeat (default 100ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Dur>,
    /// Election timeouts (defaults 400ms / 600ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub election_timeout_min: Option<Dur>,
    /// See `election_timeout_min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub election_timeout_max: Option<Dur>,
    /// The leader lease (default 400ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Dur>,
    /// Clock-rate drift allowance (default 50ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_margin: Option<Dur>,
    /// Deadline of one peer call (default 150ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_timeout: Option<Dur>,
    /// pgpool's `trusted_servers`: `host:port` addresses upstream (a
    /// router, a DNS server); a leader that can reach none steps aside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_servers: Vec<String>,
    /// Every voting member, this one included.
    #[serde(rename = "member", default)]
    pub members: Vec<MemberSection>,
}

/// One `[[watchdog.member]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSection {
    /// Its id (stable; never reused).
    pub id: Spanned<MemberId>,
    /// `host:port` its peers reach it at.
    pub address: Spanned<String>,
    /// A witness votes and probes but never leads (`pgha witness`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub witness: bool,
}

/// `[vip]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VipSection {
    /// The address with its prefix length, e.g. `"198.18.0.100/24"`.
    pub address: Spanned<String>,
    /// The interface it goes on.
    pub interface: Spanned<String>,
    /// pgpool's `if_up_cmd` (with `if_down_cmd`: moved by commands
    /// instead of netlink — no kernel lifetime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_up_cmd: Option<Spanned<String>>,
    /// pgpool's `if_down_cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_down_cmd: Option<Spanned<String>>,
    /// pgpool's `arping_cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arping_cmd: Option<String>,
    /// How often the holder announces the address (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_interval: Option<Dur>,
    /// How long a new leader's lease must have lasted before it takes the
    /// address (default 1.85s; see pgha_vip::HandoverConfig).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_wait: Option<Dur>,
    /// Whether a new leader probes the link (an ARP probe, IPv4 with
    /// netlink) while it waits and takes the address as soon as nobody
    /// answers for it (default true; see pgha_vip::HandoverConfig).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_before_take: Option<bool>,
}

/// The watchdog member this daemon runs.
#[derive(Clone)]
pub struct WatchdogSettings {
    /// This member's id.
    pub id: MemberId,
    /// Every voting member and its address.
    pub members: BTreeMap<MemberId, String>,
    /// Members that never lead.
    pub witnesses: BTreeSet<MemberId>,
    /// Where peers' calls are answered.
    pub listen: SocketAddr,
    /// Vote, log and record.
    pub state_dir: PathBuf,
    /// The shared secret.
    pub secret: Vec<u8>,
    /// The timers.
    pub timing: Timing,
    /// Upstream addresses the leader must reach to keep leading.
    pub trusted_servers: Vec<String>,
}

impl WatchdogSettings {
    /// What the watchdog needs to start this member.
    pub fn member_config(&self) -> pgha_watchdog::MemberConfig {
        let mut config =
            pgha_watchdog::MemberConfig::new(self.id, self.members.clone(), self.state_dir.clone());
        config.timing = self.timing.clone();
        config.witness = self.witnesses.contains(&self.id);
        config.trusted.addrs = self.trusted_servers.clone();
        config
    }
}

impl std::fmt::Debug for WatchdogSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchdogSettings")
            .field("id", &self.id)
            .field("members", &self.members)
            .field("witnesses", &self.witnesses)
            .field("listen", &self.listen)
            .field("state_dir", &self.state_dir)
            .field("timing", &self.timing)
            .field("trusted_servers", &self.trusted_servers)
            .finish_non_exhaustive()
    }
}

/// How the address is moved.
#[derive(Debug, Clone)]
pub enum Mover {
    /// Netlink with a kernel lifetime (the default).
    Netlink,
    /// The operator's commands.
    Commands(CommandMoverConfig),
}

/// The virtual IP this daemon holds while it leads.
#[derive(Debug, Clone)]
pub struct VipSettings {
    /// The address, prefix and interface.
    pub address: VipAddress,
    /// How it is moved.
    pub mover: Mover,
    /// The keeper's timers.
    pub keeper: KeeperConfig,
    /// From the leader lease to the address lease.
    pub handover: HandoverConfig,
}

pub(super) fn watchdog(section: WatchdogSection, ctx: &mut Ctx<'_>) -> Option<WatchdogSettings> {
    let id = *section.id.get_ref();
    let mut members = BTreeMap::new();
    let mut witnesses = BTreeSet::new();
    for member in &section.members {
        let mid = *member.id.get_ref();
        if members
            .insert(mid, member.address.get_ref().clone())
            .is_some()
        {
            ctx.problem(member.id.span(), format!("member id {mid} is listed twice"));
        }
        if member.address.get_ref().to_socket_addrs().is_err() {
            ctx.problem(
                member.address.span(),
                format!(
                    "member {mid}: {:?} is not a host:port that resolves",
                    member.address.get_ref()
                ),
            );
        }
        if member.witness {
            witnesses.insert(mid);
        }
    }
    if !members.contains_key(&id) {
        ctx.problem(
            section.id.span(),
            format!("id {id} is not one of the [[watchdog.member]] ids"),
        );
    }
    let state_dir = match &section.state_dir {
        Some(dir) => Some(ctx.path(dir.get_ref())),
        None => {
            ctx.problem(
                section.id.span(),
                "[watchdog] needs state_dir: where this member keeps its vote and log",
            );
            None
        }
    };
    let secret = secret(&section, ctx);
    let mut timing = Timing::default();
    for (target, value) in [
        (&mut timing.heartbeat, &section.heartbeat),
        (
            &mut timing.election_timeout_min,
            &section.election_timeout_min,
        ),
        (
            &mut timing.election_timeout_max,
            &section.election_timeout_max,
        ),
        (&mut timing.lease, &section.lease),
        (&mut timing.lease_margin, &section.lease_margin),
        (&mut timing.rpc_timeout, &section.rpc_timeout),
    ] {
        if let Some(d) = value {
            *target = d.0;
        }
    }
    if let Err(e) = timing.raft_config() {
        ctx.problem(section.id.span(), format!("[watchdog] timers: {e}"));
    }
    let listen = match section.listen {
        Some(listen) => Some(listen),
        None => members
            .get(&id)
            .and_then(|a| a.to_socket_addrs().ok())
            .and_then(|mut a| a.next()),
    };
    Some(WatchdogSettings {
        id,
        members,
        witnesses,
        listen: listen?,
        state_dir: state_dir?,
        secret: secret?,
        timing,
        trusted_servers: section.trusted_servers.clone(),
    })
}

fn secret(section: &WatchdogSection, ctx: &mut Ctx<'_>) -> Option<Vec<u8>> {
    let given = [
        section.secret.is_some(),
        section.secret_env.is_some(),
        section.secret_file.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        ctx.problem(
            section.id.span(),
            "[watchdog] needs exactly one of secret, secret_env, secret_file",
        );
        return None;
    }
    let (value, span) = if let Some(path) = &section.secret_file {
        let full = ctx.path(path.get_ref());
        match std::fs::read_to_string(&full) {
            Ok(text) => (text.trim().to_string(), path.span()),
            Err(e) => {
                let message = format!("secret_file {}: {e}", full.display());
                ctx.problem(path.span(), message);
                return None;
            }
        }
    } else {
        let span = section
            .secret
            .as_ref()
            .or(section.secret_env.as_ref())
            .map(|s| s.span())
            .unwrap_or_default();
        let value = ctx.secret("secret", section.secret.clone(), section.secret_env.clone())?;
        (value, span)
    };
    if value.len() < 16 {
        ctx.problem(span, "the watchdog secret must be at least 16 bytes");
        return None;
    }
    Some(value.into_bytes())
}

pub(super) fn vip(section: VipSection, watchdog: bool, ctx: &mut Ctx<'_>) -> Option<VipSettings> {
    if !watchdog {
        ctx.problem(
            section.address.span(),
            "[vip] needs [watchdog]: only the leader of the pgha nodes may hold the address",
        );
    }
    let address = match parse_cidr(section.address.get_ref()) {
        Ok((ip, prefix)) => match VipAddress::new(ip, prefix, section.interface.get_ref()) {
            Ok(address) => Some(address),
            Err(e) => {
                ctx.problem(section.interface.span(), e.to_string());
                None
            }
        },
        Err(why) => {
            ctx.problem(section.address.span(), why);
            None
        }
    };
    let mover = match (&section.if_up_cmd, &section.if_down_cmd) {
        (None, None) => Mover::Netlink,
        (Some(up), Some(down)) => {
            let mut config = CommandMoverConfig::new(up.get_ref(), down.get_ref());
            config.arping_cmd = section.arping_cmd.clone();
            Mover::Commands(config)
        }
        (Some(one), None) | (None, Some(one)) => {
            ctx.problem(
                one.span(),
                "give both if_up_cmd and if_down_cmd, or neither",
            );
            return None;
        }
    };
    let mut keeper = KeeperConfig {
        // The handover wait covers the kernel's delay in removing an
        // expired address (pgha_vip::HandoverConfig).
        margin: Duration::ZERO,
        ..KeeperConfig::default()
    };
    if let Some(d) = &section.announce_interval {
        keeper.announce_interval = d.0;
    }
    let mut handover = HandoverConfig::default();
    if let Some(d) = &section.handover_wait {
        handover.wait = d.0;
    }
    if let Some(probe) = section.probe_before_take {
        handover.probe_before_take = probe;
    }
    Some(VipSettings {
        address: address?,
        mover,
        keeper,
        handover,
    })
}

/// `"198.18.0.100/24"` → the address and prefix length.
fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: give the prefix length too, e.g. \"{text}/24\""))?;
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("{ip:?} is not an IP address"))?;
    let prefix: u8 = prefix
        .trim()
        .parse()
        .map_err(|_| format!("{prefix:?} is not a prefix length"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix == 0 || prefix > max {
        return Err(format!("prefix length {prefix} is not within 1..={max}"));
    }
    Ok((ip, prefix))
}

/// One-line remarks `check-config` prints about a valid configuration.
pub(super) fn remarks(watchdog: Option<&WatchdogSettings>) -> Vec<String> {
    let Some(w) = watchdog else {
        return Vec::new();
    };
    let mut remarks = Vec::new();
    if w.members.len() == 2 {
        remarks.push(
            "2 watchdog members and no third: neither survivor can win an election alone, so \
             after losing its peer a member keeps serving clients but neither fails over nor \
             moves the VIP; add a witness (`pgha witness`) as a third member"
                .to_string(),
        );
    } else if w.members.len() % 2 == 0 {
        remarks.push(format!(
            "{} watchdog members: an even count tolerates no more failures than one fewer",
            w.members.len()
        ));
    }
    remarks
}

/// The sections as `check-config` writes them back (no secret).
pub(super) fn render_watchdog(w: &WatchdogSettings) -> WatchdogSection {
    let sp = |v| Spanned::new(0..0, v);
    WatchdogSection {
        id: sp(w.id),
        state_dir: Some(Spanned::new(0..0, w.state_dir.clone())),
        listen: Some(w.listen),
        secret: None,
        secret_env: None,
        secret_file: None,
        heartbeat: Some(Dur(w.timing.heartbeat)),
        election_timeout_min: Some(Dur(w.timing.election_timeout_min)),
        election_timeout_max: Some(Dur(w.timing.election_timeout_max)),
        lease: Some(Dur(w.timing.lease)),
        lease_margin: Some(Dur(w.timing.lease_margin)),
        rpc_timeout: Some(Dur(w.timing.rpc_timeout)),
        trusted_servers: w.trusted_servers.clone(),
        members: w
            .members
            .iter()
            .map(|(id, address)| MemberSection {
                id: sp(*id),
                address: Spanned::new(0..0, address.clone()),
                witness: w.witnesses.contains(id),
            })
            .collect(),
    }
}

/// See [`render_watchdog`].
pub(super) fn render_vip(v: &VipSettings) -> VipSection {
    let (up, down, arping) = match &v.mover {
        Mover::Netlink => (None, None, None),
        Mover::Commands(c) => (
            Some(Spanned::new(0..0, c.if_up_cmd.clone())),
            Some(Spanned::new(0..0, c.if_down_cmd.clone())),
            c.arping_cmd.clone(),
        ),
    };
    VipSection {
        address: Spanned::new(
            0..0,
            format!("{}/{}", v.address.ip(), v.address.prefix_len()),
        ),
        interface: Spanned::new(0..0, v.address.interface().to_string()),
        if_up_cmd: up,
        if_down_cmd: down,
        arping_cmd: arping,
        announce_interval: Some(Dur(v.keeper.announce_interval)),
        handover_wait: Some(Dur(v.handover.wait)),
        probe_before_take: Some(v.handover.probe_before_take),
    }
}
