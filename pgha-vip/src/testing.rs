//! The conformance suite every [`AddressMover`] must pass (feature
//! `testing`), against a real host: run it as root, in a network
//! namespace of its own (pgha-core's `NetLab`) so nothing outside is
//! touched. pgha's own movers run it (`pgha-vip/tests/netns.rs`).
//!
//! The report is pgha-core's: every check named with its outcome; a
//! violated clause does not stop the others, and the suite then fails with
//! [`HarnessError::Contract`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgha_core::testing::HarnessError> {
//! use pgha_vip::{NetlinkMover, VipAddress};
//!
//! let mover = NetlinkMover::new().expect("root");
//! let vip = VipAddress::new([198, 18, 0, 100], 24, "eth0").expect("valid");
//! let report = pgha_vip::testing::address_mover(&mover, &vip).await?;
//! assert!(report.skipped().is_empty()); // it enforces lifetimes
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use pgha_core::testing::conformance::{CheckResult, Outcome, Report};
use pgha_core::testing::HarnessError;

use crate::{AddressMover, Error, LinkProbe, VipAddress};

/// The checks of [`address_mover`], in the order they run.
pub const MOVER_CHECKS: &[&str] = &[
    "release_not_held",
    "acquire",
    "acquire_held_renews",
    "probe_own_copy",
    "renew",
    "announce",
    "release",
    "release_twice",
    "renew_not_held_acquires",
    "lifetime",
];

/// How long after its lifetime an address may still be seen (the kernel's
/// check runs late, by up to about a second on a busy machine).
const EXPIRY_SLACK: Duration = Duration::from_millis(2500);

const IDEMPOTENT: &str = "every call is idempotent";
const HOLDS: &str = "holds reports what the host has now";
const OWN_COPY: &str = "an answer from this host does not count";
const LIFETIME: &str =
    "an enforcing mover's address disappears by itself once its lifetime runs out";

enum Fail {
    Skipped(String),
    Violated(&'static str, String),
}

type Checked = Result<Option<String>, Fail>;

/// Runs every check of [`MOVER_CHECKS`] on `mover` with `addr`, whose
/// interface must exist and which must not be configured elsewhere on the
/// host nor on any other host of the link (`probe_own_copy` checks that a
/// probe does not take this host's own copy for another's). The address
/// is released at the end.
pub async fn address_mover(
    mover: &dyn AddressMover,
    addr: &VipAddress,
) -> Result<Report, HarnessError> {
    let mut report = Report {
        subject: mover.name().to_string(),
        checks: Vec::new(),
    };
    let three = Duration::from_secs(3);
    for &name in MOVER_CHECKS {
        let started = Instant::now();
        let result = match name {
            "release_not_held" => {
                release_expecting(mover, addr, "release of an address not held").await
            }
            "acquire" => acquire_expecting(mover, addr, three, "acquire").await,
            "acquire_held_renews" => {
                acquire_expecting(mover, addr, three, "acquire of a held address").await
            }
            "probe_own_copy" => probe_own_copy(mover, addr).await,
            "renew" => renew_expecting(mover, addr).await,
            "announce" => call(IDEMPOTENT, "announce", mover.announce(addr).await),
            "release" => release_expecting(mover, addr, "release").await,
            "release_twice" => release_expecting(mover, addr, "a second release").await,
            "renew_not_held_acquires" => {
                let result = renew_expecting(mover, addr).await;
                let _ = mover.release(addr).await;
                result
            }
            _ => lifetime(mover, addr).await,
        };
        let outcome = match result {
            Ok(note) => Outcome::Passed { note },
            Err(Fail::Skipped(why)) => Outcome::Skipped { why },
            Err(Fail::Violated(clause, detail)) => Outcome::Violated { clause, detail },
        };
        report.checks.push(CheckResult {
            name,
            outcome,
            took: started.elapsed(),
        });
    }
    let _ = mover.release(addr).await;
    if report.violated().is_empty() {
        Ok(report)
    } else {
        Err(HarnessError::Contract {
            report: Box::new(report),
        })
    }
}

fn call(clause: &'static str, what: &str, result: Result<(), Error>) -> Checked {
    result
        .map(|()| None)
        .map_err(|e| Fail::Violated(clause, format!("{what} failed: {e}")))
}

async fn expect_holds(
    mover: &dyn AddressMover,
    addr: &VipAddress,
    want: bool,
    after: &str,
) -> Checked {
    match mover.holds(addr).await {
        Ok(held) if held == want => Ok(None),
        Ok(held) => Err(Fail::Violated(
            HOLDS,
            format!("after {after}, holds = {held}"),
        )),
        Err(e) => Err(Fail::Violated(
            HOLDS,
            format!("after {after}, holds failed: {e}"),
        )),
    }
}

async fn release_expecting(mover: &dyn AddressMover, addr: &VipAddress, what: &str) -> Checked {
    call(IDEMPOTENT, what, mover.release(addr).await)?;
    expect_holds(mover, addr, false, what).await
}

async fn acquire_expecting(
    mover: &dyn AddressMover,
    addr: &VipAddress,
    lifetime: Duration,
    what: &str,
) -> Checked {
    call(IDEMPOTENT, what, mover.acquire(addr, lifetime).await)?;
    expect_holds(mover, addr, true, what).await
}

async fn renew_expecting(mover: &dyn AddressMover, addr: &VipAddress) -> Checked {
    call(
        IDEMPOTENT,
        "renew",
        mover.renew(addr, Duration::from_secs(3)).await,
    )?;
    expect_holds(mover, addr, true, "renew").await
}

/// With the address held here (and, the suite assumes, nowhere else on
/// the link), a probe must not say another host has it.
async fn probe_own_copy(mover: &dyn AddressMover, addr: &VipAddress) -> Checked {
    match mover.probe_link(addr, Duration::from_millis(100)).await {
        Ok(LinkProbe::Answered) => Err(Fail::Violated(
            OWN_COPY,
            "a probe with the address held only here said another host has it".into(),
        )),
        Ok(LinkProbe::Silent) => Ok(None),
        Ok(LinkProbe::CannotTell) => Ok(Some("the mover cannot tell".into())),
        Err(e) => Err(Fail::Violated(OWN_COPY, format!("probe_link failed: {e}"))),
    }
}

async fn lifetime(mover: &dyn AddressMover, addr: &VipAddress) -> Checked {
    if !mover.enforces_lifetime() {
        return Err(Fail::Skipped("the mover does not enforce lifetimes".into()));
    }
    let lifetime = Duration::from_secs(1);
    let started = Instant::now();
    call(LIFETIME, "acquire", mover.acquire(addr, lifetime).await)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    expect_holds(mover, addr, true, "half its lifetime").await?;
    loop {
        match mover.holds(addr).await {
            Ok(false) => {
                let gone = started.elapsed();
                return Ok(Some(format!(
                    "a {lifetime:?} lifetime: gone after {gone:.2?}"
                )));
            }
            Ok(true) if started.elapsed() > lifetime + EXPIRY_SLACK => {
                return Err(Fail::Violated(
                    LIFETIME,
                    format!(
                        "still held {:.2?} after a {lifetime:?} lifetime",
                        started.elapsed()
                    ),
                ))
            }
            Ok(true) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => return Err(Fail::Violated(HOLDS, format!("holds failed: {e}"))),
        }
    }
}
