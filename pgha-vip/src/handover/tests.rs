#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::Error;

// ---- the pure step, on instants ----

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_new_leader_takes_the_address_only_after_the_wait() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig::default());
    assert_eq!(h.step(t0, Some(t0 + ms(400))), (None, Some(t0 + ms(400))));
    // Renewed all along: still waiting at 1.8 s, holding at 1.85 s.
    assert_eq!(h.step(t0 + ms(1800), Some(t0 + ms(2200))).0, None);
    assert_eq!(
        h.step(t0 + ms(1850), Some(t0 + ms(2250))),
        (Some(t0 + ms(3250)), Some(t0 + ms(2250)))
    );
}

#[test]
fn a_break_in_the_leader_lease_starts_the_wait_again() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig::default());
    h.step(t0, Some(t0 + ms(400)));
    assert!(h.step(t0 + ms(1900), Some(t0 + ms(2300))).0.is_some());
    // The lease ran out unrenewed: nothing, at once.
    assert_eq!(h.step(t0 + ms(2300), Some(t0 + ms(2300))), (None, None));
    // Back: the wait starts over.
    assert_eq!(h.step(t0 + ms(2400), Some(t0 + ms(2800))).0, None);
    assert_eq!(h.step(t0 + ms(4200), Some(t0 + ms(4600))).0, None);
    assert!(h.step(t0 + ms(4250), Some(t0 + ms(4650))).0.is_some());
}

#[test]
fn the_holders_address_outlives_its_leader_lease_by_the_stretch_only() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig::default());
    h.step(t0, Some(t0 + ms(400)));
    let (lease, _) = h.step(t0 + ms(2000), Some(t0 + ms(2400)));
    assert_eq!(lease, Some(t0 + ms(3400)));
    assert_eq!(h.step(t0 + ms(2000), None), (None, None));
}

#[test]
fn the_default_wait_covers_a_second_of_kernel_delay_after_the_watchdogs_default_gap() {
    let c = HandoverConfig::default();
    assert_eq!(
        c.wait,
        HandoverConfig::wait_for(c.stretch, Duration::from_secs(1), ms(150))
    );
}

fn waiting(h: &Handover, t: Instant) -> bool {
    h.clone().step(t, Some(t + ms(400))).0.is_none()
}

#[test]
fn two_silent_probes_after_the_lease_began_take_the_address_at_once() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig::default());
    assert!(!h.wants_probe(t0), "no lease seen yet");
    assert_eq!(h.step(t0, Some(t0 + ms(400))).0, None);
    assert!(h.wants_probe(t0));
    h.probed(t0, LinkProbe::Silent);
    // One silent probe is not enough: an answer may have been lost.
    assert_eq!(h.step(t0 + ms(100), Some(t0 + ms(500))).0, None);
    assert!(h.wants_probe(t0 + ms(100)));
    h.probed(t0 + ms(100), LinkProbe::Silent);
    assert_eq!(
        h.step(t0 + ms(200), Some(t0 + ms(600))),
        (Some(t0 + ms(1600)), Some(t0 + ms(600)))
    );
    assert!(h.took_early());
    assert!(!h.wants_probe(t0 + ms(200)), "taken: no more probes");
    // Held while the leader lease lasts, whatever is heard later.
    h.probed(t0 + ms(200), LinkProbe::Answered);
    assert!(h.step(t0 + ms(300), Some(t0 + ms(700))).0.is_some());
}

#[test]
fn an_answer_starts_the_count_again() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig::default());
    h.step(t0, Some(t0 + ms(400)));
    h.probed(t0, LinkProbe::Silent);
    h.probed(t0 + ms(100), LinkProbe::Answered);
    h.probed(t0 + ms(200), LinkProbe::Silent);
    assert!(waiting(&h, t0 + ms(300)));
    h.probed(t0 + ms(300), LinkProbe::Silent);
    assert!(!waiting(&h, t0 + ms(400)));
}

#[test]
fn probes_begun_before_the_lease_say_nothing() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig::default());
    // Heard before any lease: nothing to count them against.
    h.probed(t0, LinkProbe::Silent);
    h.step(t0 + ms(100), Some(t0 + ms(500)));
    h.probed(t0 + ms(50), LinkProbe::Silent);
    h.probed(t0 + ms(99), LinkProbe::Silent);
    assert!(waiting(&h, t0 + ms(200)));
    h.probed(t0 + ms(100), LinkProbe::Silent);
    assert!(waiting(&h, t0 + ms(200)));
    h.probed(t0 + ms(200), LinkProbe::Silent);
    assert!(!waiting(&h, t0 + ms(300)));
}

#[test]
fn a_break_in_the_leader_lease_forgets_the_silent_probes() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig::default());
    h.step(t0, Some(t0 + ms(400)));
    h.probed(t0, LinkProbe::Silent);
    assert_eq!(h.step(t0 + ms(400), Some(t0 + ms(400))), (None, None));
    h.step(t0 + ms(500), Some(t0 + ms(900)));
    // The one before the break does not count with one after it.
    h.probed(t0 + ms(500), LinkProbe::Silent);
    assert!(waiting(&h, t0 + ms(600)));
    h.probed(t0 + ms(600), LinkProbe::Silent);
    assert!(!waiting(&h, t0 + ms(700)));
}

#[test]
fn a_mover_that_cannot_tell_leaves_the_full_wait() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig::default());
    h.step(t0, Some(t0 + ms(400)));
    h.probed(t0, LinkProbe::Silent);
    h.probed(t0 + ms(100), LinkProbe::CannotTell);
    assert!(!h.wants_probe(t0 + ms(200)), "no more probes this lease");
    // A stray silent probe after that changes nothing.
    h.probed(t0 + ms(200), LinkProbe::Silent);
    h.probed(t0 + ms(300), LinkProbe::Silent);
    assert_eq!(h.step(t0 + ms(1800), Some(t0 + ms(2200))).0, None);
    assert!(h.step(t0 + ms(1850), Some(t0 + ms(2250))).0.is_some());
    assert!(!h.took_early());
    // The next lease probes again.
    h.step(t0 + ms(2000), None);
    h.step(t0 + ms(2100), Some(t0 + ms(2500)));
    assert!(h.wants_probe(t0 + ms(2100)));
}

#[test]
fn probing_off_in_the_configuration_means_no_probes_and_the_full_wait() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig {
        probe_before_take: false,
        ..HandoverConfig::default()
    });
    h.step(t0, Some(t0 + ms(400)));
    assert!(!h.wants_probe(t0));
    // Fed in anyway, they change nothing.
    h.probed(t0, LinkProbe::Silent);
    h.probed(t0 + ms(100), LinkProbe::Silent);
    assert!(waiting(&h, t0 + ms(1800)));
    assert!(!waiting(&h, t0 + ms(1850)));
}

#[test]
fn no_probe_is_wanted_once_the_wait_is_over_or_without_a_lease() {
    let t0 = Instant::now();
    let mut h = Handover::new(HandoverConfig::default());
    h.step(t0, Some(t0 + ms(400)));
    assert!(h.wants_probe(t0 + ms(1849)));
    assert!(!h.wants_probe(t0 + ms(1850)));
    h.step(t0 + ms(400), None);
    assert!(!h.wants_probe(t0 + ms(400)));
}

// ---- the shell, on tokio's paused clock ----

/// A mover whose probes take their whole `listen` and find what the
/// script says (silence once it runs out); it counts them.
struct Scripted {
    script: Mutex<VecDeque<LinkProbe>>,
    probes: Mutex<Vec<Instant>>,
}

impl Scripted {
    fn new(script: &[LinkProbe]) -> Arc<Self> {
        Arc::new(Scripted {
            script: Mutex::new(script.iter().copied().collect()),
            probes: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl AddressMover for Scripted {
    async fn acquire(&self, _: &VipAddress, _: Duration) -> Result<(), Error> {
        Ok(())
    }
    async fn release(&self, _: &VipAddress) -> Result<(), Error> {
        Ok(())
    }
    async fn announce(&self, _: &VipAddress) -> Result<(), Error> {
        Ok(())
    }
    async fn holds(&self, _: &VipAddress) -> Result<bool, Error> {
        Ok(false)
    }
    async fn probe_link(&self, _: &VipAddress, listen: Duration) -> Result<LinkProbe, Error> {
        self.probes.lock().unwrap().push(Instant::now());
        tokio::time::sleep(listen).await;
        let next = self.script.lock().unwrap().pop_front();
        Ok(next.unwrap_or(LinkProbe::Silent))
    }
    fn name(&self) -> &str {
        "scripted"
    }
}

/// Grants a 400 ms leader lease from now, renewed every 100 ms (as the
/// watchdog's heartbeats would), to `follow` over `mover`; returns when
/// the address lease began, counted from the grant.
async fn address_lease_after(mover: Arc<Scripted>) -> Duration {
    let (leader, leader_rx) = watch::channel(None);
    let vip = VipAddress::new([198, 18, 0, 100], 24, "eth0").unwrap();
    let mut lease = follow(leader_rx, HandoverConfig::default(), mover, vip);
    let t0 = Instant::now();
    let renewing = tokio::spawn(async move {
        loop {
            leader.send_replace(Some(Instant::now() + ms(400)));
            tokio::time::sleep(ms(100)).await;
        }
    });
    lease.wait_for(Option::is_some).await.unwrap();
    renewing.abort();
    Instant::now() - t0
}

#[tokio::test(start_paused = true)]
async fn follow_takes_the_address_after_two_silent_probes_in_a_row() {
    let mover = Scripted::new(&[LinkProbe::Answered, LinkProbe::Silent, LinkProbe::Answered]);
    let took = address_lease_after(Arc::clone(&mover)).await;
    // Answered, silent, answered, silent, silent: five probes back to
    // back, none cut short by the lease's renewals.
    assert_eq!(took, ms(500));
    let probes = mover.probes.lock().unwrap().clone();
    let gaps: Vec<Duration> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [ms(100); 4]);
}

#[tokio::test(start_paused = true)]
async fn follow_waits_the_handover_out_while_the_address_is_answered_for() {
    let mover = Scripted::new(&[LinkProbe::Answered; 100]);
    assert_eq!(address_lease_after(Arc::clone(&mover)).await, ms(1850));
    // Probes ran back to back until the wait was over.
    assert_eq!(mover.probes.lock().unwrap().len(), 19);
}

#[tokio::test(start_paused = true)]
async fn follow_waits_the_handover_out_for_a_mover_that_cannot_tell() {
    let mover = Scripted::new(&[LinkProbe::CannotTell]);
    assert_eq!(address_lease_after(Arc::clone(&mover)).await, ms(1850));
    assert_eq!(mover.probes.lock().unwrap().len(), 1, "asked once");
}
