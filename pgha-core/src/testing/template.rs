//! One `initdb` per machine and PostgreSQL version: a template data
//! directory that every test cluster copies (a copy takes milliseconds,
//! initdb a few seconds).

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::sync::OnceCell;

use super::procs::{append_as, as_pg_user, chown, run, write_as};
use super::{HarnessError, PgBinaries, RunAs};

/// Bump when the settings below change, so stale templates are not reused.
const TEMPLATE_REVISION: u32 = 1;

/// Settings every test server shares. Node-specific ones (port, listen
/// address, socket directory) go on the command line so that tools that
/// copy configuration between nodes (pg_basebackup, pg_rewind) cannot carry
/// one node's port to another.
const SETTINGS: &str = "
# --- pgha test harness ---
max_connections = 100
shared_buffers = 16MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 128MB
hot_standby = on
hot_standby_feedback = on
wal_log_hints = on
full_page_writes = on
# Test data is thrown away; a killed server (kill -9) keeps the OS page
# cache, so this loses nothing a test relies on, and saves seconds.
fsync = off
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 1s
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
";

/// Test servers are reached only on loopback or inside the harness's own
/// network namespaces, so every connection is trusted.
const HBA: &str = "
local all all trust
local replication all trust
host all all all trust
host replication all all trust
";

static TEMPLATE: OnceCell<PathBuf> = OnceCell::const_new();

/// The template's path, creating it on first use.
pub(crate) async fn template(bins: &PgBinaries, run_as: &RunAs) -> Result<PathBuf, HarnessError> {
    TEMPLATE
        .get_or_try_init(|| async {
            let bins = bins.clone();
            let run_as = run_as.clone();
            tokio::task::spawn_blocking(move || ensure_template(&bins, &run_as))
                .await
                .map_err(|e| HarnessError::Io {
                    what: "initdb task".into(),
                    source: std::io::Error::other(e.to_string()),
                })?
        })
        .await
        .cloned()
}

/// Where templates are cached: `$PGHA_TEMPLATE_DIR`, else beside the
/// running binary in cargo's target directory (`target/debug/`), so that
/// `cargo clean` removes it and nothing is left in `/tmp`.
fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGHA_TEMPLATE_DIR") {
        return PathBuf::from(dir);
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    match exe_dir {
        Some(dir) if dir.ends_with("deps") || dir.ends_with("examples") => {
            dir.parent().map(Path::to_path_buf).unwrap_or(dir)
        }
        Some(dir) => dir,
        None => std::env::temp_dir(),
    }
}

fn ensure_template(bins: &PgBinaries, run_as: &RunAs) -> Result<PathBuf, HarnessError> {
    let root = cache_root();
    let path = root.join(format!(
        "pgha-pg-template-{}-r{}-u{}",
        bins.major(),
        TEMPLATE_REVISION,
        run_as.uid
    ));
    if path.join("PG_VERSION").is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&root)
        .map_err(HarnessError::io(format!("creating {}", root.display())))?;
    tracing::info!(template = %path.display(), "running initdb for the test template");

    // initdb runs as the PostgreSQL user, who may not be able to reach the
    // target directory (a clone under /root): build in /tmp, then copy.
    let work = tempfile::Builder::new()
        .prefix("pgha-initdb-")
        .tempdir()
        .map_err(HarnessError::io("creating initdb work directory"))?;
    chown(work.path(), run_as)?;
    let data = work.path().join("data");
    let mut initdb = Command::new(bins.bin("initdb"));
    initdb.arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    as_pg_user(&mut initdb, run_as);
    run(&mut initdb)?;
    append_as(&data.join("postgresql.conf"), SETTINGS, run_as)?;
    write_as(&data.join("pg_hba.conf"), HBA, run_as)?;

    // Publish atomically: concurrent test binaries may race to build it.
    let staging = root.join(format!("{}.tmp-{}", file_name(&path), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    copy_tree(&data, &staging)?;
    if std::fs::rename(&staging, &path).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        if !path.join("PG_VERSION").is_file() {
            return Err(HarnessError::Io {
                what: format!("publishing template {}", path.display()),
                source: std::io::Error::other("rename failed and no template exists"),
            });
        }
    }
    Ok(path)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Copies a directory tree keeping modes and owners (`cp -a`).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), HarnessError> {
    run(Command::new("cp").arg("-a").arg(from).arg(to)).map(drop)
}
