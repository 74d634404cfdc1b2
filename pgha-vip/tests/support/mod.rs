//! What the namespace tests share: keepers and services on hosts, a client
//! that retries, a two-holder sampler. Test-only uses of `ip` read the
//! client's neighbour table and hosts' hardware addresses.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a part

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use pgha_core::testing::{HarnessError, NetLab, NetnsTask, CLIENT};
use pgha_vip::{AddressMover, KeeperConfig, KeeperStatus, NetlinkMover, VipAddress, VipKeeper};
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The TCP service every host runs on the virtual IP: it answers its
/// host's name.
pub const PORT: u16 = 7100;

/// The lab's first virtual IP, a /24 on `eth0`.
pub fn vip(lab: &NetLab) -> VipAddress {
    VipAddress::new(lab.vip(0), 24, "eth0").unwrap()
}

/// A host's keeper (on a [`NetlinkMover`]) and its service.
pub struct Holder {
    /// The local lease, as the watchdog would publish it.
    pub lease: watch::Sender<Option<Instant>>,
    /// What the keeper did.
    pub status: watch::Receiver<KeeperStatus>,
    task: Option<NetnsTask<()>>,
    renewer: Option<JoinHandle<()>>,
}

impl Holder {
    /// Starts a keeper (default configuration) and the service on `host`.
    pub async fn start(lab: &NetLab, host: &'static str) -> Result<Holder, HarnessError> {
        Self::start_with(lab, host, vip(lab)).await
    }

    /// The same, for `vip`.
    pub async fn start_with(
        lab: &NetLab,
        host: &'static str,
        vip: VipAddress,
    ) -> Result<Holder, HarnessError> {
        let (lease, lease_rx) = watch::channel(None);
        let (status_tx, status_rx) = oneshot::channel();
        let task = lab.spawn(host, move || async move {
            let mover = NetlinkMover::new().expect("a netlink mover (root)");
            let keeper =
                VipKeeper::new(Arc::new(mover), vip.clone()).with_config(KeeperConfig::default());
            let _ = status_tx.send(keeper.status());
            tokio::join!(
                keeper.run(lease_rx, std::future::pending()),
                serve(vip.ip(), host)
            );
        })?;
        let status = status_rx.await.expect("keeper started");
        Ok(Holder {
            lease,
            status,
            task: Some(task),
            renewer: None,
        })
    }

    /// Kills the keeper and its service, as `kill -9` would (nothing is
    /// released), and stops extending the lease; returns when it ends.
    pub fn kill(&mut self) -> Option<Instant> {
        self.task = None;
        self.stop_renewing()
    }

    /// Grants the lease for `length`, extended every `every` (as a
    /// watchdog leader would) until [`lose`](Self::lose) or
    /// [`stop_renewing`](Self::stop_renewing).
    pub fn grant(&mut self, length: Duration, every: Duration) {
        self.stop_renewing();
        let lease = self.lease.clone();
        lease.send_replace(Some(Instant::now() + length));
        self.renewer = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                lease.send_replace(Some(Instant::now() + length));
            }
        }));
    }

    /// The lease is no longer extended; returns when it ends.
    pub fn stop_renewing(&mut self) -> Option<Instant> {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        *self.lease.borrow()
    }

    /// The lease is lost (`None`).
    pub fn lose(&mut self) {
        self.stop_renewing();
        self.lease.send_replace(None);
    }

    /// Waits until the keeper says it holds the address (or not).
    pub async fn wait_held(&mut self, held: bool) {
        tokio::time::timeout(
            Duration::from_secs(10),
            self.status.wait_for(|s| s.held == held),
        )
        .await
        .expect("the keeper changed in time")
        .expect("the keeper runs");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.stop_renewing();
    }
}

/// The service alone on `host` (no keeper).
pub fn service(lab: &NetLab, host: &'static str) -> Result<NetnsTask<()>, HarnessError> {
    let ip = vip(lab).ip();
    lab.spawn(host, move || serve(ip, host))
}

/// Answers `name` to every connection on `ip:PORT`. Bound with
/// `IP_FREEBIND`, so it listens before the address is here.
async fn serve(ip: IpAddr, name: &'static str) {
    let socket = Socket::new(
        Domain::for_address(SocketAddr::new(ip, PORT)),
        Type::STREAM,
        None,
    )
    .expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    match ip {
        IpAddr::V4(_) => socket.set_freebind_v4(true).expect("IP_FREEBIND"),
        IpAddr::V6(_) => socket.set_freebind_v6(true).expect("IPV6_FREEBIND"),
    }
    // The service of a host killed just before may still be closing.
    let mut tries = 0;
    while let Err(error) = socket.bind(&SocketAddr::new(ip, PORT).into()) {
        tries += 1;
        assert!(tries < 500, "bind: {error}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    socket.listen(64).expect("listen");
    socket.set_nonblocking(true).expect("non-blocking");
    let listener = TcpListener::from_std(socket.into()).expect("listener");
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.write_all(name.as_bytes()).await;
    }
}

/// From the client: tries `ip:PORT` every 5 ms (each try on its own, for
/// 300 ms at most, so a try lost to the old holder does not hold up the
/// next) until `want` answers; when it did, or `None` after `within`.
pub async fn reach(
    lab: &NetLab,
    ip: IpAddr,
    want: &'static str,
    within: Duration,
) -> Option<StdInstant> {
    let task = lab
        .spawn(CLIENT, move || async move {
            let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
            let tries = tokio::task::LocalSet::new();
            let trying = tries.run_until(async move {
                let started = StdInstant::now();
                while started.elapsed() < within {
                    let answered = answered.clone();
                    tokio::task::spawn_local(async move {
                        let attempt = async {
                            let mut stream = TcpStream::connect((ip, PORT)).await.ok()?;
                            let mut answer = String::new();
                            stream.read_to_string(&mut answer).await.ok()?;
                            (answer == want).then(StdInstant::now)
                        };
                        if let Ok(Some(at)) =
                            tokio::time::timeout(Duration::from_millis(300), attempt).await
                        {
                            let _ = answered.send(at);
                        }
                    });
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            tokio::select! {
                at = answers.recv() => at,
                () = trying => None,
            }
        })
        .expect("spawn in the client");
    task.join().await.flatten()
}

/// A host's hardware address on `eth0`.
pub fn mac(lab: &NetLab, host: &str) -> String {
    let out = lab
        .run(host, &["ip", "-o", "link", "show", "dev", "eth0"])
        .unwrap();
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap()
        .to_string()
}

/// The hardware address the client's neighbour table has for `ip`.
pub fn client_neighbour(lab: &NetLab, ip: IpAddr) -> Option<String> {
    let out = lab
        .run(
            CLIENT,
            &["ip", "neigh", "show", &ip.to_string(), "dev", "eth0"],
        )
        .ok()?;
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_string)
}

/// A [`NetlinkMover`] working in `host`'s namespace, usable from the test.
pub struct Observer {
    pub mover: Arc<NetlinkMover>,
    _task: NetnsTask<()>,
}

impl Observer {
    /// Observers on hosts `a` and `b`.
    pub async fn a_and_b(lab: &NetLab) -> Result<(Observer, Observer), HarnessError> {
        Ok((Observer::on(lab, "a").await?, Observer::on(lab, "b").await?))
    }

    pub async fn on(lab: &NetLab, host: &str) -> Result<Observer, HarnessError> {
        let (tx, rx) = oneshot::channel();
        let task = lab.spawn(host, move || async move {
            let _ = tx.send(Arc::new(NetlinkMover::new().expect("netlink mover")));
            // Its netlink connection runs on this namespace's runtime.
            std::future::pending::<()>().await;
        })?;
        Ok(Observer {
            mover: rx.await.expect("observer started"),
            _task: task,
        })
    }

    pub async fn holds(&self, vip: &VipAddress) -> bool {
        self.mover.holds(vip).await.unwrap()
    }
}

/// Queries two hosts alternately, one every 25 ms (each host every
/// 50 ms), and counts two-holder samples: a query that found the address
/// while the other host's queries just before and just after found it too.
pub struct Sampler {
    samples: Arc<Mutex<Vec<(usize, bool)>>>,
    task: JoinHandle<()>,
}

impl Sampler {
    pub fn start(a: &Observer, b: &Observer, vip: &VipAddress) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let movers = [a.mover.clone(), b.mover.clone()];
        let (vip, log) = (vip.clone(), samples.clone());
        let task = tokio::spawn(async move {
            for i in 0.. {
                let host = i % 2;
                let held = movers[host].holds(&vip).await.unwrap_or(false);
                log.lock().unwrap().push((host, held));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        Sampler { samples, task }
    }

    /// (samples taken, two-holder samples)
    pub fn finish(self) -> (usize, usize) {
        self.task.abort();
        let samples = self.samples.lock().unwrap();
        let two = samples
            .windows(3)
            .filter(|w| w.iter().all(|&(_, held)| held))
            .count();
        (samples.len(), two)
    }
}

/// The median and the worst of some durations.
pub fn median_worst(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

/// A host's address as the client reaches it.
pub fn v4(vip: &VipAddress) -> Ipv4Addr {
    match vip.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => panic!("an IPv4 lab"),
    }
}
