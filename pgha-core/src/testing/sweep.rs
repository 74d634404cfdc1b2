//! Cleaning up after test processes that died without running their
//! destructors (a SIGKILLed test binary, a CI timeout). Every directory
//! and namespace the harness makes carries its owner's pid; once that
//! process is gone, the next harness user removes what it left.

use std::sync::Once;

use super::procs;

/// Prefix of cluster directories in the temp directory:
/// `pgha-test-<owner pid>-<random>`.
pub(crate) const CLUSTER_PREFIX: &str = "pgha-test-";

/// Runs [`sweep_stale_clusters`] once per process.
pub(crate) fn stale_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sweep_stale_clusters);
}

/// The owner pid encoded in a harness-made name, `<prefix><pid>-…`.
pub(crate) fn owner_pid(name: &str, prefix: &str) -> Option<i32> {
    name.strip_prefix(prefix)?
        .split(['-', 'x'])
        .next()?
        .parse()
        .ok()
}

/// Whether the owner of a harness-made name is gone.
pub(crate) fn is_stale(name: &str, prefix: &str) -> bool {
    owner_pid(name, prefix)
        .is_some_and(|pid| pid != std::process::id() as i32 && !procs::alive(pid))
}

fn sweep_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_stale(&name, CLUSTER_PREFIX) {
            continue;
        }
        let nodes = std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten();
        for node in nodes {
            let pidfile = node.path().join("data").join("postmaster.pid");
            let pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.lines().next()?.trim().parse::<i32>().ok());
            // Only a postmaster still serving this very data directory:
            // the pid may have been reused by something else.
            if let Some(pid) = pid {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let data = node.path().join("data");
                if String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy()) {
                    tracing::warn!(pid, dir = %data.display(), "killing a postgres left by a dead test process");
                    let _ = procs::kill_tree(pid);
                    procs::reap(&[pid]);
                }
            }
        }
        tracing::warn!(dir = %entry.path().display(), "removing a cluster directory left by a dead test process");
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_read_from_the_name() {
        assert_eq!(owner_pid("pgha-test-1234-abc", CLUSTER_PREFIX), Some(1234));
        assert_eq!(owner_pid("pgha1234x2-h0", "pgha"), Some(1234));
        assert_eq!(owner_pid("other-1234", CLUSTER_PREFIX), None);
    }

    #[test]
    fn our_own_names_are_never_stale() {
        let mine = format!("{CLUSTER_PREFIX}{}-x", std::process::id());
        assert!(!is_stale(&mine, CLUSTER_PREFIX));
    }
}
