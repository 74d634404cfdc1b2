//! Which operating-system user PostgreSQL runs as.
//!
//! PostgreSQL refuses to start as root. When the tests run as root (CI
//! does), servers run as `postgres` if that user exists, else as a user the
//! harness creates (`pgha-test`); otherwise as the current user.

use std::process::Command;

use nix::unistd::{Uid, User};

use super::HarnessError;

const CREATED_USER: &str = "pgha-test";

/// The identity PostgreSQL processes are started with.
#[derive(Debug, Clone)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// User name (also PostgreSQL's bootstrap superuser).
    pub name: String,
    /// Whether the harness must switch to this user (it runs as root).
    pub switch: bool,
}

impl RunAs {
    /// Chooses the user as described in the module docs.
    pub fn choose() -> Result<Self, HarnessError> {
        let me = Uid::current();
        if !me.is_root() {
            let user = User::from_uid(me).ok().flatten();
            let name = user
                .map(|u| u.name)
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "postgres".into());
            return Ok(Self {
                uid: me.as_raw(),
                gid: nix::unistd::Gid::current().as_raw(),
                name,
                switch: false,
            });
        }
        let user = match lookup("postgres")? {
            Some(u) => u,
            None => match lookup(CREATED_USER)? {
                Some(u) => u,
                None => {
                    create_user()?;
                    lookup(CREATED_USER)?.ok_or_else(|| HarnessError::User {
                        what: format!("user {CREATED_USER} missing after useradd"),
                    })?
                }
            },
        };
        Ok(Self {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            name: user.name,
            switch: true,
        })
    }
}

fn lookup(name: &str) -> Result<Option<User>, HarnessError> {
    User::from_name(name).map_err(|e| HarnessError::User {
        what: format!("looking up user {name}: {e}"),
    })
}

fn create_user() -> Result<(), HarnessError> {
    let status = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home"])
        .args(["--shell", "/usr/sbin/nologin", CREATED_USER])
        .status()
        .map_err(|e| HarnessError::User {
            what: format!("running useradd: {e}"),
        })?;
    // Another test binary may have created it at the same moment (exit 9).
    if status.success() || status.code() == Some(9) {
        Ok(())
    } else {
        Err(HarnessError::User {
            what: format!("useradd {CREATED_USER} failed: {status}"),
        })
    }
}
