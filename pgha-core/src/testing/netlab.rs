//! Linux network namespaces for multi-host tests.
//!
//! Layout: one namespace per host and one for the client, each with an
//! `eth0` joined to a bridge that lives in a namespace of its own — the
//! root namespace and the machine's interfaces are never touched, and no
//! namespace has a route out. Addresses come from 198.18.0.0/24 (part of
//! the 198.18.0.0/15 benchmarking range): hosts `.10`, `.11`, …, virtual
//! IPs `.100`–`.199` ([`NetLab::vip`]), the client `.250`.
//!
//! Partitions are nftables rules in the bridge namespace that drop frames
//! between two bridge ports, so they hold for every address a host has,
//! virtual IPs included.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use super::procs::{self, run};
use super::{in_ci, sweep, HarnessError};

mod task;
pub use task::NetnsTask;

/// Name of the client host every lab has.
pub const CLIENT: &str = "client";
const PREFIX: &str = "pgha";
static LABS: AtomicU32 = AtomicU32::new(0);

/// Whether this process can build a [`NetLab`]. Outside CI a test that
/// cannot skips, saying why on stderr; in CI (`CI=true`) it panics instead,
/// because CI must run the multi-host tests.
pub fn require_root_or_skip(test: &str) -> bool {
    let why = if !nix::unistd::Uid::effective().is_root() {
        Some("network namespaces need root")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("iproute2 (`ip`) is not installed")
    } else if Command::new("nft").arg("--version").output().is_err() {
        Some("nftables (`nft`) is not installed")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if in_ci() => panic!("{test}: cannot run in CI: {why}"),
        Some(why) => {
            eprintln!("SKIPPED {test}: {why} (run as root with iproute2 and nftables; CI=true makes this a failure)");
            false
        }
    }
}

/// Builds a [`NetLab`].
#[derive(Debug, Default)]
pub struct NetLabBuilder {
    hosts: Vec<String>,
}

impl NetLabBuilder {
    /// Adds hosts by name (short lowercase names: `a`, `b`, `db1`).
    pub fn hosts<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hosts.extend(names.into_iter().map(Into::into));
        self
    }

    /// Creates the namespaces, the bridge and the links.
    pub fn build(self) -> Result<NetLab, HarnessError> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err(HarnessError::NotRoot {
                what: "creating network namespaces".into(),
            });
        }
        procs::become_subreaper();
        sweep_stale_namespaces();
        let id = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::SeqCst)
        );
        let mut lab = NetLab {
            bridge_ns: format!("{id}-br"),
            hosts: Vec::new(),
            cuts: Mutex::new(BTreeSet::new()),
        };
        lab.add_ns(&lab.bridge_ns.clone())?;
        ip(&lab.bridge_ns, &["link", "add", "br0", "type", "bridge"])?;
        ip(&lab.bridge_ns, &["link", "set", "br0", "up"])?;
        let mut names = self.hosts;
        names.push(CLIENT.to_string());
        for (i, name) in names.into_iter().enumerate() {
            let octet = if name == CLIENT { 250 } else { 10 + i as u8 };
            let host = Host {
                netns: format!("{id}-{name}"),
                port: format!("p{i}"),
                ip: Ipv4Addr::new(198, 18, 0, octet),
                kill: watch::channel(false).0,
                name,
            };
            lab.add_ns(&host.netns)?;
            ip(
                &lab.bridge_ns,
                &[
                    "link",
                    "add",
                    &host.port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &host.netns,
                ],
            )?;
            ip(
                &lab.bridge_ns,
                &["link", "set", &host.port, "master", "br0", "up"],
            )?;
            ip(
                &host.netns,
                &["addr", "add", &format!("{}/24", host.ip), "dev", "eth0"],
            )?;
            ip(&host.netns, &["link", "set", "eth0", "up"])?;
            ip(&host.netns, &["link", "set", "lo", "up"])?;
            lab.hosts.push(host);
        }
        Ok(lab)
    }
}

#[derive(Debug)]
struct Host {
    name: String,
    netns: String,
    port: String,
    ip: Ipv4Addr,
    /// Set to true by `kill_host`: every task spawned in the host ends.
    kill: watch::Sender<bool>,
}

/// Hosts in network namespaces on one bridge; removed on drop.
#[derive(Debug)]
pub struct NetLab {
    bridge_ns: String,
    hosts: Vec<Host>,
    cuts: Mutex<BTreeSet<(usize, usize)>>,
}

impl NetLab {
    /// A builder; every lab also has a host named [`CLIENT`].
    pub fn builder() -> NetLabBuilder {
        NetLabBuilder::default()
    }

    fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("NetLab has no host {name:?}"))
    }

    fn index(&self, name: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .unwrap_or_else(|| panic!("NetLab has no host {name:?}"))
    }

    /// The namespace name of a host (for `ip netns exec`).
    pub fn netns(&self, host: &str) -> &str {
        &self.host(host).netns
    }

    /// A host's address.
    pub fn ip(&self, host: &str) -> Ipv4Addr {
        self.host(host).ip
    }

    /// The `n`th address reserved for virtual IPs (`n` < 100), on the
    /// hosts' subnet (a /24).
    pub fn vip(&self, n: u8) -> Ipv4Addr {
        assert!(n < 100, "vip index {n} out of range");
        Ipv4Addr::new(198, 18, 0, 100 + n)
    }

    /// A command that runs inside a host's namespace.
    pub fn command(&self, host: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.netns(host), program]);
        cmd
    }

    /// Runs a command in a host's namespace and returns what it printed.
    pub fn run(&self, host: &str, argv: &[&str]) -> Result<String, HarnessError> {
        let (program, args) = argv.split_first().ok_or_else(|| HarnessError::Io {
            what: "NetLab::run".into(),
            source: std::io::Error::other("empty command"),
        })?;
        run(self.command(host, program).args(args))
    }

    /// Runs a future on a thread inside a host's namespace (with its own
    /// single-threaded tokio runtime): sockets it opens belong to that
    /// host. It ends when it completes, when the task handle is aborted or
    /// dropped, or when the host is killed.
    pub fn spawn<F, Fut, T>(&self, host: &str, make: F) -> Result<NetnsTask<T>, HarnessError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let h = self.host(host);
        task::spawn_in(&h.netns, h.kill.subscribe(), make)
    }

    /// Drops all traffic between hosts `a` and `b` (both ways).
    pub fn partition(&self, a: &str, b: &str) -> Result<(), HarnessError> {
        let (a, b) = (self.index(a), self.index(b));
        let mut cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner());
        cuts.insert((a.min(b), a.max(b)));
        self.apply_cuts(&cuts)
    }

    /// Cuts a host off from every other host (its link stays up).
    pub fn isolate(&self, host: &str) -> Result<(), HarnessError> {
        let me = self.index(host);
        let mut cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner());
        for other in (0..self.hosts.len()).filter(|&o| o != me) {
            cuts.insert((me.min(other), me.max(other)));
        }
        self.apply_cuts(&cuts)
    }

    /// Removes every partition.
    pub fn heal(&self) -> Result<(), HarnessError> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner());
        cuts.clear();
        self.apply_cuts(&cuts)
    }

    fn apply_cuts(&self, cuts: &BTreeSet<(usize, usize)>) -> Result<(), HarnessError> {
        // Rewrite the whole table each time: the set of cuts is the truth.
        let mut rules = String::from("table bridge pgha\ndelete table bridge pgha\n");
        rules.push_str("table bridge pgha {\n chain cuts {\n  type filter hook forward priority 0; policy accept;\n");
        for &(a, b) in cuts {
            let (pa, pb) = (&self.hosts[a].port, &self.hosts[b].port);
            rules.push_str(&format!("  iifname \"{pa}\" oifname \"{pb}\" drop\n"));
            rules.push_str(&format!("  iifname \"{pb}\" oifname \"{pa}\" drop\n"));
        }
        rules.push_str(" }\n}\n");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.bridge_ns, "nft", "-f", "-"]);
        procs::run_with_input(&mut cmd, &rules).map(drop)
    }

    /// Kills a whole host: its link goes down first (so nothing it sends on
    /// the way out reaches anyone), then every process in its namespace
    /// and every task spawned there ends.
    pub fn kill_host(&self, host: &str) -> Result<(), HarnessError> {
        let h = self.host(host);
        ip(&self.bridge_ns, &["link", "set", &h.port, "down"])?;
        h.kill.send_replace(true);
        kill_netns_processes(&h.netns);
        Ok(())
    }

    fn add_ns(&mut self, name: &str) -> Result<(), HarnessError> {
        run(Command::new("ip").args(["netns", "add", name])).map(drop)
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for h in &self.hosts {
            h.kill.send_replace(true);
            kill_netns_processes(&h.netns);
            let _ = run(Command::new("ip").args(["netns", "del", &h.netns]));
        }
        kill_netns_processes(&self.bridge_ns);
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.bridge_ns])) {
            tracing::warn!(error = %e, "could not delete the bridge namespace");
        }
    }
}

fn ip(netns: &str, args: &[&str]) -> Result<(), HarnessError> {
    run(Command::new("ip").arg("-n").arg(netns).args(args)).map(drop)
}

fn kill_netns_processes(netns: &str) {
    let Ok(out) = run(Command::new("ip").args(["netns", "pids", netns])) else {
        return;
    };
    let me = std::process::id() as i32;
    let pids: Vec<i32> = out
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|&p| p != me)
        .collect();
    // Stop them all first so that none forks or restarts another.
    for &pid in &pids {
        let _ = procs::signal(pid, nix::sys::signal::Signal::SIGSTOP);
    }
    for &pid in &pids {
        let _ = procs::signal(pid, nix::sys::signal::Signal::SIGKILL);
    }
    procs::reap(&pids);
}

/// Removes namespaces left by test processes that died without dropping
/// their lab.
fn sweep_stale_namespaces() {
    let Ok(out) = run(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for name in out.lines().filter_map(|l| l.split_whitespace().next()) {
        if sweep::is_stale(name, PREFIX) {
            tracing::warn!(
                netns = name,
                "removing a namespace left by a dead test process"
            );
            kill_netns_processes(name);
            let _ = run(Command::new("ip").args(["netns", "del", name]));
        }
    }
}
