//! Process plumbing: signals by pid, child enumeration through `/proc`,
//! and running helper programs with their output captured.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{HarnessError, RunAs};

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub(crate) fn signal(pid: i32, signal: Signal) -> Result<(), HarnessError> {
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(HarnessError::Signal {
            signal: signal.as_str().to_string(),
            pid,
            source,
        }),
    }
}

/// Whether a process with this pid exists (zombies count as gone).
pub(crate) fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat).is_some_and(|(state, _)| state != "Z"),
        Err(_) => false,
    }
}

/// `(state, ppid)` from a `/proc/PID/stat` line. The command name is in
/// parentheses and may itself hold spaces or parentheses, so parse from
/// the last `)`.
fn stat_fields(stat: &str) -> Option<(&str, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut it = rest.split_whitespace();
    let state = it.next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The direct children of `parent`. PostgreSQL's postmaster children each
/// call `setsid()`, so a process group does not reach them: they must be
/// found by parent pid.
pub(crate) fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_fields(&s).map(|(_, ppid)| ppid))
                == Some(parent)
        })
        .collect()
}

/// Stops (SIGSTOP) a postmaster and every child it has. The postmaster is
/// stopped first so that it cannot fork a child we would miss.
pub(crate) fn freeze_tree(postmaster: i32) -> Result<(), HarnessError> {
    signal(postmaster, Signal::SIGSTOP)?;
    for child in children_of(postmaster) {
        signal(child, Signal::SIGSTOP)?;
    }
    Ok(())
}

/// Resumes what [`freeze_tree`] stopped: children first, so that the
/// postmaster finds them running when it wakes.
pub(crate) fn thaw_tree(postmaster: i32) -> Result<(), HarnessError> {
    for child in children_of(postmaster) {
        signal(child, Signal::SIGCONT)?;
    }
    signal(postmaster, Signal::SIGCONT)
}

/// SIGKILLs a postmaster and its children, like a machine losing power
/// under them. Children are listed before the postmaster dies (after that
/// they are re-parented and could not be found); they are returned so the
/// caller can [`reap`] them once the postmaster is gone.
pub(crate) fn kill_tree(postmaster: i32) -> Result<Vec<i32>, HarnessError> {
    signal(postmaster, Signal::SIGSTOP)?;
    let children = children_of(postmaster);
    for child in &children {
        signal(*child, Signal::SIGKILL)?;
    }
    signal(postmaster, Signal::SIGKILL)?;
    Ok(children)
}

/// Removes the System V shared memory segments of `uid` that nothing is
/// attached to and whose creator is gone. A postmaster killed with SIGKILL
/// (by a test, or restarted by pgha's local agent and killed at teardown)
/// leaves its (56-byte) segment behind, and the kernel allows 4,096 of them
/// (SHMMNI): after that many killed servers on one machine, no PostgreSQL
/// starts ("could not create shared memory segment: No space left on
/// device"). A live postmaster stays attached to its segment, so one with
/// no attachment and a dead creator is nobody's.
pub(crate) fn remove_orphaned_shm(uid: u32) {
    let Ok(table) = std::fs::read_to_string("/proc/sysvipc/shm") else {
        return;
    };
    let owner = uid.to_string();
    for line in table.lines().skip(1) {
        // key shmid perms size cpid lpid nattch uid …
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(creator) = f.get(4).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if f.len() > 7 && f[7] == owner && f[6] == "0" && !alive(creator) {
            let removed = Command::new("ipcrm").args(["-m", f[1]]).output();
            if !removed.is_ok_and(|o| o.status.success()) {
                tracing::warn!(
                    shmid = f[1],
                    "could not remove a killed server's shared memory segment"
                );
            }
        }
    }
}

/// Makes this process the reaper of its orphaned descendants. Without it,
/// the children of a killed postmaster go to pid 1, which in a sandbox may
/// reap them late: they would linger as zombies owned by the PostgreSQL
/// user, and a test that checks "no postgres left" would see them.
pub(crate) fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(error = %e, "cannot become a child subreaper; killed servers' children may linger as zombies");
        }
    });
}

/// Collects the exit status of killed processes that are (now) our
/// children. Pids that are not ours are skipped; each gets at most 2 s.
pub(crate) fn reap(pids: &[i32]) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    for &pid in pids {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                _ => break,
            }
        }
    }
}

/// Makes `cmd` run as the PostgreSQL user when the harness runs as root.
pub(crate) fn as_pg_user(cmd: &mut Command, run_as: &RunAs) {
    if run_as.switch {
        cmd.uid(run_as.uid).gid(run_as.gid);
        // Tools like initdb look at HOME and USER; root's are not theirs.
        cmd.env("HOME", "/tmp").env("USER", &run_as.name);
    }
}

/// Runs a helper program to completion; a failure carries its output.
pub(crate) fn run(cmd: &mut Command) -> Result<String, HarnessError> {
    run_with(cmd, None)
}

/// Runs a helper program with `input` on its stdin.
pub(crate) fn run_with_input(cmd: &mut Command, input: &str) -> Result<String, HarnessError> {
    run_with(cmd, Some(input))
}

fn run_with(cmd: &mut Command, input: Option<&str>) -> Result<String, HarnessError> {
    use std::io::Write;
    use std::process::Stdio;
    let program = format!(
        "{:?} {:?}",
        cmd.get_program(),
        cmd.get_args().collect::<Vec<_>>()
    );
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(HarnessError::io(format!("running {program}")))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .map_err(HarnessError::io(format!("writing to {program}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(HarnessError::io(format!("waiting for {program}")))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(HarnessError::Command {
            program,
            status: out.status.to_string(),
            output: tail(&text, 40),
        })
    }
}

/// The last `lines` lines of a text.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Changes the owner of `path` to the PostgreSQL user (when running as
/// root; otherwise files are ours already).
pub(crate) fn chown(path: &Path, run_as: &RunAs) -> Result<(), HarnessError> {
    if run_as.switch {
        std::os::unix::fs::chown(path, Some(run_as.uid), Some(run_as.gid))
            .map_err(HarnessError::io(format!("chown {}", path.display())))?;
    }
    Ok(())
}

/// Writes a file owned by the PostgreSQL user.
pub(crate) fn write_as(path: &Path, text: &str, run_as: &RunAs) -> Result<(), HarnessError> {
    std::fs::write(path, text).map_err(HarnessError::io(format!("writing {}", path.display())))?;
    chown(path, run_as)
}

/// Appends to a file owned by the PostgreSQL user.
pub(crate) fn append_as(path: &Path, text: &str, run_as: &RunAs) -> Result<(), HarnessError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(HarnessError::io(format!("opening {}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(HarnessError::io(format!("appending to {}", path.display())))?;
    chown(path, run_as)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_parentheses_in_the_name() {
        let line = "1234 (post (gres) x) S 77 1234 1234 0 -1";
        assert_eq!(stat_fields(line), Some(("S", 77)));
    }

    #[test]
    fn our_own_process_is_alive_and_a_child_of_its_parent() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        let parent = nix::unistd::getppid().as_raw();
        assert!(children_of(parent).contains(&me));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
