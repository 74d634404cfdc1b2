//! Conformance suites for plugin authors: the checks any
//! [`NodeController`](crate::NodeController) or
//! [`HealthProbe`](crate::HealthProbe) must pass, against real PostgreSQL
//! servers started by the harness, and those any
//! [`FailoverPolicy`](crate::FailoverPolicy) must pass over seeded random
//! event histories ([`failover_policy`], pure: no server, no clock). pgha's
//! own implementations run the same suites (`pgha-core/tests/conformance.rs`).
//!
//! Each suite returns a [`Report`] naming every check and what came of it.
//! A check whose clause the implementation violates does not stop the
//! suite: the others still run, and the suite then fails with
//! [`HarnessError::Contract`] carrying the whole report. Only a failure of
//! the harness itself (a server that does not start) stops it early.
//! [`failover_policy`] needs no harness: it returns the report, violations
//! included.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgha_core::testing::HarnessError> {
//! use std::sync::Arc;
//! use pgha_core::testing::conformance::{self, ProbeCapabilities};
//! use pgha_core::{ConnectConfig, SqlNodeController, SqlProbe};
//!
//! let report = conformance::node_controller(|_cluster| {
//!     Arc::new(SqlNodeController::default())
//! })
//! .await?;
//! assert!(report.skipped().contains(&"rejoin")); // SQL cannot rewind
//!
//! let probe = Arc::new(SqlProbe::new(ConnectConfig::default()));
//! let capabilities = ProbeCapabilities { sees_role: true, detects_hang: true };
//! conformance::health_probe(probe, capabilities).await?;
//! # Ok(()) }
//! ```

mod controller;
mod histories;
mod policy;
mod probe;

use std::fmt;
use std::time::Duration;

pub use controller::{node_controller, node_controller_checks, CONTROLLER_CHECKS};
pub use policy::{failover_policy, failover_policy_on, POLICY_CHECKS};
pub use probe::{health_probe, ProbeCapabilities, PROBE_CHECKS};

use super::HarnessError;

/// What came of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The implementation kept the contract.
    Passed {
        /// Anything worth knowing, e.g. that a fence was not confirmed so
        /// there was nothing to verify.
        note: Option<String>,
    },
    /// Not run: the implementation said it does not support the operation
    /// (`Error::Unsupported`), or did not claim the capability.
    Skipped {
        /// Why.
        why: String,
    },
    /// The implementation broke a clause of its contract.
    Violated {
        /// The clause, as the trait's `# Contract` states it.
        clause: &'static str,
        /// What was seen instead.
        detail: String,
    },
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check's name (one of [`CONTROLLER_CHECKS`], [`PROBE_CHECKS`] or
    /// [`POLICY_CHECKS`]).
    pub name: &'static str,
    /// What came of it.
    pub outcome: Outcome,
    /// How long it took, cluster start included.
    pub took: Duration,
}

/// Which checks of a suite ran, passed, were skipped or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The implementation checked (its `name()`).
    pub subject: String,
    /// Every check, in the order they ran.
    pub checks: Vec<CheckResult>,
}

impl Report {
    fn new(subject: impl Into<String>) -> Self {
        Report {
            subject: subject.into(),
            checks: Vec::new(),
        }
    }

    fn names(&self, keep: impl Fn(&Outcome) -> bool) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| keep(&c.outcome))
            .map(|c| c.name)
            .collect()
    }

    /// The checks that passed.
    pub fn passed(&self) -> Vec<&'static str> {
        self.names(|o| matches!(o, Outcome::Passed { .. }))
    }

    /// The checks that were skipped.
    pub fn skipped(&self) -> Vec<&'static str> {
        self.names(|o| matches!(o, Outcome::Skipped { .. }))
    }

    /// The checks whose clause was violated.
    pub fn violated(&self) -> Vec<&'static str> {
        self.names(|o| matches!(o, Outcome::Violated { .. }))
    }

    /// The outcome of the check called `name`, if it is in the report.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.outcome)
    }

    /// `Ok(self)` when no clause was violated, else
    /// [`HarnessError::Contract`].
    fn into_result(self) -> Result<Report, HarnessError> {
        if self.violated().is_empty() {
            Ok(self)
        } else {
            Err(HarnessError::Contract {
                report: Box::new(self),
            })
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conformance of {}:", self.subject)?;
        for check in &self.checks {
            let took = check.took.as_secs_f64();
            match &check.outcome {
                Outcome::Passed { note: None } => {
                    write!(f, "\n  passed   {} ({took:.1}s)", check.name)?
                }
                Outcome::Passed { note: Some(note) } => {
                    write!(f, "\n  passed   {} ({took:.1}s): {note}", check.name)?
                }
                Outcome::Skipped { why } => write!(f, "\n  skipped  {}: {why}", check.name)?,
                Outcome::Violated { clause, detail } => write!(
                    f,
                    "\n  VIOLATED {} ({took:.1}s): contract: {clause}; saw: {detail}",
                    check.name
                )?,
            }
        }
        Ok(())
    }
}

/// Why a check did not pass.
enum Fail {
    Skipped(String),
    Violated {
        clause: &'static str,
        detail: String,
    },
    Harness(HarnessError),
}

impl From<HarnessError> for Fail {
    fn from(e: HarnessError) -> Self {
        Fail::Harness(e)
    }
}

/// A violation of `clause`.
fn violated(clause: &'static str, detail: impl Into<String>) -> Fail {
    Fail::Violated {
        clause,
        detail: detail.into(),
    }
}

/// A check's own result: `Ok(note)` when it passed.
type Checked = Result<Option<String>, Fail>;

/// Records the result of one check; a harness failure ends the suite.
fn record(
    report: &mut Report,
    name: &'static str,
    started: std::time::Instant,
    result: Checked,
) -> Result<(), HarnessError> {
    let outcome = match result {
        Ok(note) => Outcome::Passed { note },
        Err(Fail::Skipped(why)) => Outcome::Skipped { why },
        Err(Fail::Violated { clause, detail }) => Outcome::Violated { clause, detail },
        Err(Fail::Harness(e)) => return Err(e),
    };
    tracing::info!(subject = %report.subject, check = name, ?outcome, "conformance check done");
    report.checks.push(CheckResult {
        name,
        outcome,
        took: started.elapsed(),
    });
    Ok(())
}
