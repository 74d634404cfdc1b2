//! The shell around [`import`](super::import): reads the files named on the
//! command line, writes the results.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{import, Input, Request};

/// `pgha import-pgpool`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// pgpool-II's pgpool.conf, of the host the output is for (pgpool
    /// 4.2+: the pgpool_node_id file beside it is read too).
    #[arg(value_name = "PGPOOL_CONF")]
    pub pgpool_conf: PathBuf,
    /// Its pool_hba.conf: converted into hba.conf next to the output.
    #[arg(value_name = "POOL_HBA_CONF")]
    pub pool_hba: Option<PathBuf>,
    /// Its pool_passwd: converted into userlist.txt next to the output.
    #[arg(value_name = "POOL_PASSWD")]
    pub pool_passwd: Option<PathBuf>,
    /// Write pgha.toml here (and hba.conf, userlist.txt, watchdog.key
    /// beside it) instead of printing it; the files are created readable
    /// by their owner only.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The TOML, when no output file was given (for stdout).
    pub stdout: Option<String>,
    /// The files written.
    pub written: Vec<PathBuf>,
    /// What the operator must look at, one `file:line: what` each.
    pub warnings: Vec<String>,
}

impl ImportArgs {
    /// Runs the import. The error is what to print (one `file:line: what
    /// is wrong` per line for a malformed input) before exiting with
    /// status 2.
    pub fn run(&self) -> Result<Outcome, String> {
        if self.output.is_none() && (self.pool_hba.is_some() || self.pool_passwd.is_some()) {
            return Err(
                "pgha import-pgpool: pool_hba.conf and pool_passwd are converted into \
                        files next to pgha.toml: give the output file with -o OUT"
                    .into(),
            );
        }
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read it: {e}", path.display()))
        };
        let conf_name = self.pgpool_conf.display().to_string();
        let conf = read(&self.pgpool_conf)?;
        let hba_name = self.pool_hba.as_ref().map(|p| p.display().to_string());
        let hba = self.pool_hba.as_deref().map(read).transpose()?;
        let passwd_name = self.pool_passwd.as_ref().map(|p| p.display().to_string());
        let passwd = self.pool_passwd.as_deref().map(read).transpose()?;
        // pgpool 4.2+ reads this host's watchdog id from this file beside
        // pgpool.conf; older versions have none.
        let node_id_path = self
            .pgpool_conf
            .parent()
            .unwrap_or(Path::new(""))
            .join("pgpool_node_id");
        let node_id_name = node_id_path.display().to_string();
        let node_id = if node_id_path.exists() {
            Some(read(&node_id_path)?)
        } else {
            None
        };
        let request = Request {
            pool_hba: hba_name
                .as_deref()
                .zip(hba.as_deref())
                .map(|(n, t)| Input::new(n, t)),
            pool_passwd: passwd_name
                .as_deref()
                .zip(passwd.as_deref())
                .map(|(n, t)| Input::new(n, t)),
            pgpool_node_id: node_id.as_deref().map(|t| Input::new(&node_id_name, t)),
            secret_name: self.output.as_ref().map(|_| "watchdog.key"),
            ..Request::new(Input::new(&conf_name, &conf))
        };
        let imported = import(&request).map_err(|e| e.to_string())?;
        let Some(output) = &self.output else {
            return Ok(Outcome {
                stdout: Some(imported.toml),
                written: Vec::new(),
                warnings: imported.warnings,
            });
        };
        let dir = output.parent().unwrap_or(Path::new(""));
        let mut files = vec![(output.clone(), imported.toml)];
        if let Some(text) = imported.hba {
            files.push((dir.join(request.hba_name), text));
        }
        if let Some(text) = imported.auth_file {
            files.push((dir.join(request.auth_name), text));
        }
        if let (Some(text), Some(name)) = (imported.watchdog_key, request.secret_name) {
            files.push((dir.join(name), text));
        }
        let inputs: Vec<&Path> = [
            Some(&self.pgpool_conf),
            self.pool_hba.as_ref(),
            self.pool_passwd.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect();
        // Check every target before writing any, so a refusal leaves
        // nothing half done.
        for (path, _) in &files {
            if inputs.iter().any(|input| same_file(input, path)) {
                return Err(format!(
                    "{}: that is an input; choose another -o",
                    path.display()
                ));
            }
            if !self.force && path.exists() {
                return Err(format!(
                    "{}: already exists (give --force to replace it)",
                    path.display()
                ));
            }
        }
        let mut written = Vec::new();
        for (path, text) in files {
            write_private(&path, &text)
                .map_err(|e| format!("{}: cannot write it: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "written");
            written.push(path);
        }
        Ok(Outcome {
            stdout: None,
            written,
            warnings: imported.warnings,
        })
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Writes `text` to `path`, readable by its owner only: the files can hold
/// passwords.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
