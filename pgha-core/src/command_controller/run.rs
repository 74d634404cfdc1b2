//! Running one operator command: `sh -c`, bounded in time, output kept.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::Error;

/// How many lines of output an error carries.
const TAIL_LINES: usize = 20;
/// How much output is kept in memory (the end of it).
const KEEP_BYTES: usize = 64 * 1024;
/// After the shell exits, how long to wait for the rest of its output. A
/// daemon the script started (`pg_ctl start` without `-l`) may hold the
/// pipe open for its whole life; it must not hold up the failover.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Runs `line` (a rendered [`ShellTemplate`](crate::ShellTemplate)) with
/// `sh -c` in its own process group, stdin closed; `Ok` on exit status 0.
/// On timeout (or if this future is dropped) the whole process group is
/// killed, so a hung script's children do not live on, and the call fails
/// with [`Error::Command`] carrying the last lines the command printed
/// (stdout and stderr in the order written).
///
/// `operation` and `subject` only name the command in logs and errors:
/// `"promote"` of `"node node1"`, `"acquire"` of `"198.51.100.7/24 on eth0"`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
///
/// let ok = pgha_core::run_command("test", "nothing", "true", Duration::from_secs(5)).await;
/// assert!(ok.is_ok());
/// let hung = pgha_core::run_command("test", "nothing", "sleep 10", Duration::from_millis(50)).await;
/// assert!(matches!(hung, Err(pgha_core::Error::Command { status, .. }) if status.starts_with("timed out")));
/// # }
/// ```
pub async fn run_command(
    operation: &str,
    subject: &str,
    line: &str,
    timeout: Duration,
) -> Result<(), Error> {
    tracing::info!(subject, operation, command = line, "running command");
    // One pipe for both streams (`exec 2>&1` before the operator's line):
    // two pipes read side by side lose the order in which a script wrote,
    // and the last lines are the ones an operator needs.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 2>&1\n{line}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Io {
            what: format!("{operation} of {subject}: starting sh"),
            source,
        })?;
    let mut group = GroupKiller(child.id());
    let mut output = Output::default();
    let mut stdout = child.stdout.take();

    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let status = loop {
        tokio::select! {
            read = read_some(&mut stdout) => output.push(read, &mut stdout),
            status = child.wait() => break Some(status),
            () = &mut deadline => break None,
        }
    };
    let status = match status {
        Some(status) => {
            // Reaped: the pid may be reused, never signal its group again.
            group.0 = None;
            status.map_err(|source| Error::Io {
                what: format!("{operation} of {subject}: waiting for sh"),
                source,
            })?
        }
        None => {
            group.kill();
            let _ = child.wait().await;
            drain(&mut output, &mut stdout).await;
            let error = Error::Command {
                command: line.to_string(),
                status: format!("timed out after {timeout:?}"),
                output: output.tail(),
            };
            tracing::warn!(subject, operation, command = line, status = "timed out", output = %output.tail(), "command killed");
            return Err(error);
        }
    };
    drain(&mut output, &mut stdout).await;
    if status.success() {
        tracing::info!(subject, operation, command = line, %status, output = %output.tail(), "command succeeded");
        Ok(())
    } else {
        tracing::warn!(subject, operation, command = line, %status, output = %output.tail(), "command failed");
        Err(Error::Command {
            command: line.to_string(),
            status: status.to_string(),
            output: output.tail(),
        })
    }
}

/// Reads what is left in the pipes for a short while.
async fn drain<R: tokio::io::AsyncRead + Unpin>(output: &mut Output, pipe: &mut Option<R>) {
    let grace = tokio::time::sleep(DRAIN_GRACE);
    tokio::pin!(grace);
    while pipe.is_some() {
        tokio::select! {
            read = read_some(pipe) => output.push(read, pipe),
            () = &mut grace => break,
        }
    }
}

/// One read from a pipe; never completes once the pipe is closed (`None`).
async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    pipe: &mut Option<R>,
) -> std::io::Result<Vec<u8>> {
    match pipe {
        Some(pipe) => {
            let mut buf = vec![0; 4096];
            let n = pipe.read(&mut buf).await?;
            buf.truncate(n);
            Ok(buf)
        }
        None => std::future::pending().await,
    }
}

/// The end of what a command printed (stdout and stderr, in the order written).
#[derive(Default)]
struct Output(Vec<u8>);

impl Output {
    /// Keeps what was read; closes the pipe at end of file or on error.
    fn push<R>(&mut self, read: std::io::Result<Vec<u8>>, pipe: &mut Option<R>) {
        match read {
            Ok(bytes) if !bytes.is_empty() => {
                self.0.extend_from_slice(&bytes);
                if self.0.len() > KEEP_BYTES {
                    let excess = self.0.len() - KEEP_BYTES;
                    self.0.drain(..excess);
                }
            }
            _ => *pipe = None,
        }
    }

    /// The last [`TAIL_LINES`] lines.
    fn tail(&self) -> String {
        let text = String::from_utf8_lossy(&self.0);
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }
}

/// SIGKILLs a process group: on [`kill`](Self::kill), or on drop while
/// armed (the caller gave up on the command).
struct GroupKiller(Option<u32>);

impl GroupKiller {
    fn kill(&mut self) {
        let Some(group) = self.0.take() else {
            return;
        };
        // No libc (unsafe is forbidden): the shell's `kill` takes a negative
        // pid for a process group. It returns at once; waiting reaps it.
        let result = std::process::Command::new("sh")
            .args(["-c", "kill -s KILL -- \"-$1\"", "kill"])
            .arg(group.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(error) = result {
            tracing::warn!(group, %error, "could not kill a command's process group");
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}
