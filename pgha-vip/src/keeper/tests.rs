#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::Error;
use KeeperCommand::{Acquire, Announce, Release, Renew};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A plan past its start-up release, at `t0`.
fn started(enforces: bool) -> (KeeperPlan, Instant) {
    let mut plan = KeeperPlan::new(KeeperConfig::default(), enforces);
    let t0 = Instant::now();
    assert_eq!(plan.step(t0, None), [Release]);
    (plan, t0)
}

// ---- the pure plan: one event, the exact commands ----

#[test]
fn start_removes_a_copy_left_by_a_crash() {
    let mut plan = KeeperPlan::new(KeeperConfig::default(), true);
    let t0 = Instant::now();
    assert_eq!(plan.step(t0, None), [Release]);
    assert_eq!(plan.step(t0 + ms(10), None), []);
    assert!(!plan.held());
}

#[test]
fn lifetime_is_the_lease_less_the_margin_rounded_down() {
    // (lease left, lifetime acquired)
    let cases = [
        (ms(4000), Some(s(3))),
        (ms(4999), Some(s(3))),
        (ms(2000), Some(s(1))),
        (ms(1999), None), // under a whole second after the margin: wait
        (ms(500), None),
        (ms(60_000), Some(s(59))),
    ];
    for (left, lifetime) in cases {
        let (mut plan, t0) = started(true);
        let expected = match lifetime {
            Some(lifetime) => vec![Acquire { lifetime }, Announce],
            None => vec![],
        };
        assert_eq!(plan.step(t0, Some(t0 + left)), expected, "lease {left:?}");
        assert_eq!(plan.held(), lifetime.is_some());
    }
}

#[test]
fn acquisition_is_announced_three_times_100ms_apart_then_every_interval() {
    let (mut plan, t0) = started(true);
    let lease = Some(t0 + s(60));
    assert_eq!(
        plan.step(t0, lease),
        [Acquire { lifetime: s(59) }, Announce]
    );
    assert_eq!(plan.next_wake(lease), Some(t0 + ms(100)));
    assert_eq!(plan.step(t0 + ms(50), lease), []);
    assert_eq!(plan.step(t0 + ms(100), lease), [Announce]);
    assert_eq!(plan.next_wake(lease), Some(t0 + ms(200)));
    assert_eq!(plan.step(t0 + ms(200), lease), [Announce]);
    assert_eq!(plan.next_wake(lease), Some(t0 + ms(2200)));
    assert_eq!(plan.step(t0 + ms(2200), lease), [Announce]);
    assert_eq!(plan.next_wake(lease), Some(t0 + ms(4200)));
}

/// A started plan that announces once per minute only, to watch the rest.
fn quiet(enforces: bool) -> (KeeperPlan, Instant) {
    let config = KeeperConfig {
        announce_count: 1,
        announce_interval: s(60),
        ..KeeperConfig::default()
    };
    let mut plan = KeeperPlan::new(config, enforces);
    let t0 = Instant::now();
    assert_eq!(plan.step(t0, None), [Release]);
    (plan, t0)
}

#[test]
fn renews_whenever_the_lifetime_would_end_later() {
    let (mut plan, t0) = quiet(true);
    assert_eq!(
        plan.step(t0, Some(t0 + s(4))),
        [Acquire { lifetime: s(3) }, Announce]
    );
    // Same lease, 500 ms on: 2 s more would end at 2.5 s, before 3 s.
    assert_eq!(plan.step(t0 + ms(500), Some(t0 + s(4))), []);
    // Extended by 300 ms at 0.7 s: 2 s more ends at 2.7 s: nothing.
    assert_eq!(plan.step(t0 + ms(700), Some(t0 + ms(4300))), []);
    // Extended by a second at 1 s: 3 s more ends at 4 s: renewed.
    assert_eq!(
        plan.step(t0 + s(1), Some(t0 + s(5))),
        [Renew { lifetime: s(3) }]
    );
    // Not extended: at 1.5 s, 2 whole seconds more would end at 3.5 s; at
    // 2 s, at 4 s: neither is later than 4 s. A renewal never shortens it.
    assert_eq!(plan.step(t0 + ms(1500), Some(t0 + s(5))), []);
    assert_eq!(plan.step(t0 + s(2), Some(t0 + s(5))), []);
    // Whole seconds leave room: acquired at 0 for 2 s under a lease that
    // allows 2.5 s...
    let (mut plan, t0) = quiet(true);
    assert_eq!(
        plan.step(t0, Some(t0 + ms(3500))),
        [Acquire { lifetime: s(2) }, Announce]
    );
    // ...at 0.4 s the 2 s left end at 2.4 s, later than 2 s: renewed, so
    // the address lives as close to the lease less the margin as it can.
    assert_eq!(
        plan.step(t0 + ms(400), Some(t0 + ms(3500))),
        [Renew { lifetime: s(2) }]
    );
    assert!(plan.held());
}

#[test]
fn a_lost_lease_is_released_at_once_and_stops_announcements() {
    let (mut plan, t0) = started(true);
    let lease = Some(t0 + s(10));
    plan.step(t0, lease);
    assert_eq!(plan.step(t0 + s(1), None), [Release]);
    assert!(!plan.held());
    assert_eq!(plan.next_wake(None), None);
    assert_eq!(plan.step(t0 + s(3), None), []);
}

#[test]
fn a_lease_that_runs_out_is_left_to_the_kernel() {
    let (mut plan, t0) = quiet(true);
    let lease = Some(t0 + ms(2500));
    assert_eq!(plan.step(t0, lease), [Acquire { lifetime: s(1) }, Announce]);
    // The kernel lifetime ends at 1 s, the lease at 2.5 s.
    assert_eq!(plan.next_wake(lease), Some(t0 + s(1)));
    // Gone by the kernel at 1 s; nothing left to do at the lease's end.
    assert_eq!(plan.step(t0 + s(1), lease), []);
    assert!(!plan.held());
    assert_eq!(plan.next_wake(lease), None);
    assert_eq!(plan.step(t0 + ms(2500), lease), []);
}

#[test]
fn a_renewal_that_lands_after_a_freeze_is_released_at_once() {
    let (mut plan, t0) = quiet(true);
    let lease = Some(t0 + ms(2500));
    assert_eq!(plan.step(t0, lease), [Acquire { lifetime: s(1) }, Announce]);
    plan.completed(Acquire { lifetime: s(1) }, t0);
    // Renewed at 0.5 s — and the process frozen inside the call for 4 s:
    // the kernel took the renewal at the thaw, the address is back for 1 s.
    let renew = plan.step(t0 + ms(500), lease);
    assert_eq!(renew, [Renew { lifetime: s(1) }]);
    plan.completed(Renew { lifetime: s(1) }, t0 + ms(4500));
    // The lease ran out meanwhile: the address goes now, not "by the kernel".
    assert!(plan.held());
    assert_eq!(plan.step(t0 + ms(4501), None), [Release]);
}

#[test]
fn a_mover_without_lifetimes_is_released_at_the_lease_end() {
    let (mut plan, t0) = quiet(false);
    let lease = Some(t0 + ms(2500));
    assert_eq!(plan.step(t0, lease), [Acquire { lifetime: s(1) }, Announce]);
    // No kernel expiry to wait for: the lease's end is the next thing.
    assert_eq!(plan.next_wake(lease), Some(t0 + ms(2500)));
    assert_eq!(plan.step(t0 + s(1), lease), []);
    assert!(plan.held());
    assert_eq!(plan.step(t0 + ms(2500), lease), [Release]);
}

#[test]
fn a_new_lease_after_the_kernel_expired_the_address_is_a_new_acquisition() {
    let (mut plan, t0) = quiet(true);
    plan.step(t0, Some(t0 + ms(2500)));
    assert_eq!(plan.step(t0 + ms(1100), Some(t0 + ms(2500))), []);
    assert!(!plan.held());
    // The lease comes back extended: acquired and announced again.
    assert_eq!(
        plan.step(t0 + ms(1200), Some(t0 + ms(5200))),
        [Acquire { lifetime: s(3) }, Announce]
    );
}

#[test]
fn failed_commands_are_retried_after_the_delay() {
    let (mut plan, t0) = quiet(true);
    let lease = Some(t0 + s(10));
    plan.step(t0, lease);
    plan.failed(Acquire { lifetime: s(9) }, t0);
    assert!(!plan.held());
    assert_eq!(plan.next_wake(lease), Some(t0 + ms(500)));
    assert_eq!(plan.step(t0 + ms(100), lease), []);
    assert_eq!(
        plan.step(t0 + ms(500), lease),
        [
            Acquire {
                lifetime: Duration::from_secs(8)
            },
            Announce
        ]
    );

    // A failed renewal: acquired (and announced) again after the delay.
    let at = t0 + s(1);
    assert_eq!(plan.step(at, Some(at + s(10))), [Renew { lifetime: s(9) }]);
    plan.failed(Renew { lifetime: s(9) }, at);
    assert_eq!(plan.step(at + ms(100), Some(at + s(10))), []);
    assert_eq!(
        plan.step(at + ms(500), Some(at + s(10))),
        [
            Acquire {
                lifetime: Duration::from_secs(8)
            },
            Announce
        ]
    );

    // A failed release is tried again until it works.
    let at = t0 + s(3);
    assert_eq!(plan.step(at, None), [Release]);
    plan.failed(Release, at);
    assert_eq!(plan.next_wake(None), Some(at + ms(500)));
    assert_eq!(plan.step(at + ms(100), None), []);
    assert_eq!(plan.step(at + ms(500), None), [Release]);
    assert_eq!(plan.step(at + ms(600), None), []);
}

#[test]
fn a_failed_announcement_changes_nothing() {
    let (mut plan, t0) = started(true);
    let lease = Some(t0 + s(10));
    plan.step(t0, lease);
    plan.failed(Announce, t0);
    assert!(plan.held());
    assert_eq!(plan.step(t0 + ms(100), lease), [Announce]);
}

#[test]
fn the_lifetime_never_outlives_the_lease_less_the_margin() {
    // Arbitrary lease histories: every lifetime set ends by lease - margin.
    let margin = KeeperConfig::default().margin;
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for _ in 0..200 {
        let (mut plan, t0) = started(true);
        let mut now = t0;
        let mut lease: Option<Instant> = None;
        for _ in 0..50 {
            now += ms(next(1500));
            lease = match next(4) {
                0 => None,
                1 => lease,
                _ => Some(now + ms(next(6000))),
            };
            for command in plan.step(now, lease) {
                if let Acquire { lifetime } | Renew { lifetime } = command {
                    let end = lease.unwrap();
                    assert!(
                        now + lifetime + margin <= end,
                        "{command:?} at {now:?} under {end:?}"
                    );
                    assert!(lifetime >= s(1) && lifetime.subsec_nanos() == 0);
                }
            }
        }
    }
}

// ---- the shell on tokio's paused clock ----

/// A mover that records what it is asked, with the (paused) time.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(Duration, String)>>,
    start: Mutex<Option<Instant>>,
    fail_acquires: Mutex<u32>,
}

impl Recorder {
    fn log(&self, call: String) {
        let start = *self.start.lock().unwrap().get_or_insert_with(Instant::now);
        self.calls.lock().unwrap().push((start.elapsed(), call));
    }

    fn calls(&self) -> Vec<(u64, String)> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .map(|(t, c)| (t.as_millis() as u64, c.clone()))
            .collect()
    }
}

#[async_trait]
impl AddressMover for Recorder {
    async fn acquire(&self, _: &VipAddress, lifetime: Duration) -> Result<(), Error> {
        self.log(format!("acquire {}s", lifetime.as_secs()));
        let mut failures = self.fail_acquires.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err(Error::Config {
                what: "refused".into(),
            });
        }
        Ok(())
    }

    async fn renew(&self, _: &VipAddress, lifetime: Duration) -> Result<(), Error> {
        self.log(format!("renew {}s", lifetime.as_secs()));
        Ok(())
    }

    async fn release(&self, _: &VipAddress) -> Result<(), Error> {
        self.log("release".into());
        Ok(())
    }

    async fn announce(&self, _: &VipAddress) -> Result<(), Error> {
        self.log("announce".into());
        Ok(())
    }

    async fn holds(&self, _: &VipAddress) -> Result<bool, Error> {
        Ok(false)
    }

    fn enforces_lifetime(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "recorder"
    }
}

fn vip() -> VipAddress {
    VipAddress::new([192, 0, 2, 50], 24, "eth0").unwrap()
}

/// A keeper on a recorder, started (its start-up release done) at time 0.
async fn keeper() -> (
    Arc<Recorder>,
    watch::Sender<Option<Instant>>,
    watch::Receiver<KeeperStatus>,
    tokio::sync::oneshot::Sender<()>,
    JoinHandle<()>,
) {
    let recorder = Arc::new(Recorder::default());
    recorder.log("start".into());
    let keeper = VipKeeper::new(recorder.clone(), vip());
    let status = keeper.status();
    let (lease, lease_rx) = watch::channel(None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(keeper.run(lease_rx, async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(ms(1)).await;
    (recorder, lease, status, stop, task)
}

fn calls(list: &[(u64, &str)]) -> Vec<(u64, String)> {
    list.iter().map(|&(t, c)| (t, c.to_string())).collect()
}

#[tokio::test(start_paused = true)]
async fn holds_the_address_while_the_lease_is_renewed_and_releases_when_it_is_lost() {
    let (recorder, lease, mut status, _stop, _task) = keeper().await;
    // The watchdog's lease: 4 s, extended every second, for 3 s.
    for _ in 0..3 {
        lease.send_replace(Some(Instant::now() + s(4)));
        tokio::time::sleep(s(1)).await;
    }
    lease.send_replace(None);
    tokio::time::sleep(ms(10)).await;
    assert_eq!(
        recorder.calls(),
        calls(&[
            (0, "start"),
            (0, "release"),
            (1, "acquire 3s"),
            (1, "announce"),
            (101, "announce"),
            (201, "announce"),
            (1001, "renew 3s"),
            (2001, "renew 3s"),
            (2201, "announce"),
            (3001, "release"),
        ])
    );
    let seen = status.borrow_and_update().clone();
    assert_eq!(
        seen,
        KeeperStatus {
            held: false,
            acquisitions: 1,
            renewals: 2,
            releases: 2,
            announcements: 4,
            failures: 0
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_left_to_run_out_is_given_up_by_the_kernel() {
    let (recorder, lease, mut status, _stop, _task) = keeper().await;
    let end = Instant::now() + ms(3500);
    lease.send_replace(Some(end));
    status.wait_for(|s| s.held).await.unwrap();
    // Not extended: renewed toward the lease less the margin (2.5 s), then
    // given up by the kernel; nothing to release at the lease's end.
    status.wait_for(|s| !s.held).await.unwrap();
    assert!(Instant::now() + KeeperConfig::default().margin <= end);
    tokio::time::sleep(s(5)).await;
    let seen = recorder.calls();
    assert_eq!(seen[2], (1, "acquire 2s".to_string()));
    for (at, call) in &seen[2..] {
        if let Some(lifetime) = call.strip_prefix("renew ") {
            let lifetime: u64 = lifetime.trim_end_matches('s').parse().unwrap();
            assert!(at + lifetime * 1000 <= 2501, "{seen:?}");
        }
    }
    assert_eq!(
        seen.iter().filter(|(_, c)| c == "release").count(),
        1,
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_releases_and_a_dropped_lease_sender_too() {
    let (recorder, lease, mut status, stop, task) = keeper().await;
    lease.send_replace(Some(Instant::now() + s(10)));
    status.wait_for(|s| s.held).await.unwrap();
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(recorder.calls().last().unwrap().1, "release");
    assert!(!status.borrow().held);

    let (recorder, lease, mut status, _stop, task) = keeper().await;
    lease.send_replace(Some(Instant::now() + s(10)));
    status.wait_for(|s| s.held).await.unwrap();
    drop(lease);
    task.await.unwrap();
    assert_eq!(recorder.calls().last().unwrap().1, "release");
}

#[tokio::test(start_paused = true)]
async fn a_failed_acquisition_is_retried() {
    let (recorder, lease, mut status, _stop, _task) = keeper().await;
    *recorder.fail_acquires.lock().unwrap() = 2;
    lease.send_replace(Some(Instant::now() + s(10)));
    status.wait_for(|s| s.held).await.unwrap();
    let seen = recorder.calls();
    assert_eq!(
        seen[2..6],
        calls(&[
            (1, "acquire 9s"),
            (501, "acquire 8s"),
            (1001, "acquire 8s"),
            (1001, "announce")
        ])[..]
    );
    assert_eq!(status.borrow().failures, 2);
}
