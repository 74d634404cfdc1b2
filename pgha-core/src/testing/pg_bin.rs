//! Finding the PostgreSQL server binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::HarnessError;

/// Where the PostgreSQL server programs (`initdb`, `postgres`,
/// `pg_basebackup`, `pg_rewind`, `pg_ctl`) live, and their major version.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    dir: PathBuf,
    major: u32,
}

impl PgBinaries {
    /// Finds the binaries: `$PG_BINDIR`, else `pg_config --bindir`, else the
    /// newest `/usr/lib/postgresql/*/bin`. Debian's `pg_config` on `PATH`
    /// may belong to a client-only package, so each candidate must hold
    /// `initdb` and `postgres` to count.
    pub fn find() -> Result<Self, HarnessError> {
        let mut tried = Vec::new();
        if let Some(dir) = std::env::var_os("PG_BINDIR") {
            let dir = PathBuf::from(dir);
            // An explicit choice that is wrong is an error, not a fallback.
            return Self::at(&dir).ok_or_else(|| HarnessError::NoPostgres {
                tried: format!("PG_BINDIR={} (no initdb/postgres there)", dir.display()),
            });
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            if out.status.success() {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if let Some(found) = Self::at(&dir) {
                    return Ok(found);
                }
                tried.push(format!("pg_config --bindir = {}", dir.display()));
            }
        } else {
            tried.push("pg_config (not on PATH)".into());
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        versions.sort();
        for (_, dir) in versions.iter().rev() {
            if let Some(found) = Self::at(dir) {
                return Ok(found);
            }
        }
        tried.push("/usr/lib/postgresql/*/bin".into());
        Err(HarnessError::NoPostgres {
            tried: tried.join(", "),
        })
    }

    fn at(dir: &Path) -> Option<Self> {
        if !dir.join("initdb").is_file() || !dir.join("postgres").is_file() {
            return None;
        }
        let out = Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split_whitespace().nth(2)?;
        let major = version.split('.').next()?.parse().ok()?;
        Some(Self {
            dir: dir.to_path_buf(),
            major,
        })
    }

    /// The directory holding the programs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PostgreSQL major version (e.g. 15).
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The full path of one program, e.g. `bin("pg_rewind")`.
    pub fn bin(&self, program: &str) -> PathBuf {
        self.dir.join(program)
    }
}
