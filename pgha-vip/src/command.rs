//! [`CommandMover`]: pgpool-II's `if_up_cmd`, `if_down_cmd` and
//! `arping_cmd`, for clouds and networks netlink cannot serve.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pgha_core::{Scan, ShellTemplate};
use serde::{Deserialize, Serialize};

use crate::{AddressMover, Error, VipAddress};

/// The address commands, as in pgpool-II's `pgpool.conf`.
///
/// | placeholder | value |
/// |---|---|
/// | `$_IP_$` | the address (`192.0.2.50`), as pgpool |
/// | `$_IF_$` | the interface (`eth0`) |
/// | `$_PREFIX_$` | the prefix length (`24`) |
///
/// Each value is inserted as one single-quoted shell word (so a
/// placeholder must stand bare, not inside quotes), and each command runs
/// with `sh -c` and the daemon's `PATH`: pgpool's `if_cmd_path` and
/// `arping_path` are not needed (write absolute paths if `PATH` lacks
/// `/sbin`, and `sudo` in front where pgha does not run as root).
///
/// ```
/// use pgha_vip::CommandMoverConfig;
///
/// // The seed's pgpool.conf, as pgha reads it.
/// let config: CommandMoverConfig = toml::from_str(r#"
///     if_up_cmd = "ip addr add $_IP_$/24 dev ens33 label ens33:0"
///     if_down_cmd = "ip addr del $_IP_$/24 dev ens33"
///     arping_cmd = "arping -U $_IP_$ -w 1 -I ens33"
/// "#).unwrap();
/// assert_eq!(config.timeout, std::time::Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandMoverConfig {
    /// Adds the address: pgpool's `if_up_cmd`. Required.
    pub if_up_cmd: String,
    /// Removes it: pgpool's `if_down_cmd`. Required.
    pub if_down_cmd: String,
    /// Announces it: pgpool's `arping_cmd`. Default: none (nothing is
    /// announced; clients wait for their ARP cache to expire).
    #[serde(default)]
    pub arping_cmd: Option<String>,
    /// How long one command may run before it is killed (with every
    /// process it started) and counted as failed. Written with a unit.
    /// Default: `"10s"`.
    #[serde(default = "default_timeout", with = "pgha_core::duration_serde")]
    pub timeout: Duration,
}

/// 10 s: `ip addr` returns at once and the seed's `arping -w 1` after a
/// second; a command still running after ten has hung.
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl CommandMoverConfig {
    /// The two required commands; no announce command, default timeout.
    pub fn new(if_up_cmd: impl Into<String>, if_down_cmd: impl Into<String>) -> Self {
        CommandMoverConfig {
            if_up_cmd: if_up_cmd.into(),
            if_down_cmd: if_down_cmd.into(),
            arping_cmd: None,
            timeout: default_timeout(),
        }
    }
}

/// An [`AddressMover`] that runs the operator's commands
/// ([`CommandMoverConfig`]), so that pgpool-II's `if_up_cmd`,
/// `if_down_cmd` and `arping_cmd` keep working where netlink cannot do the
/// job (a cloud API moving an address between machines, a host where pgha
/// may only run `sudo ip`).
///
/// Each command is parsed when the mover is built (an unknown `$_X_$`, or
/// a placeholder inside quotes, is a configuration error then) and runs
/// under [`timeout`](CommandMoverConfig::timeout) in its own process group,
/// killed whole when the time is up, like
/// [`CommandNodeController`](pgha_core::CommandNodeController)'s
/// (`pgha_core::run_command`).
///
/// * `acquire` runs `if_up_cmd` unless the host already has the address;
///   `renew` does nothing more. `release` runs `if_down_cmd` if the host
///   has the address or this mover added it. `announce` runs `arping_cmd`
///   once.
/// * `holds` asks the kernel whether a socket can be bound to the address
///   (it is configured on some interface of this host); a host with
///   `net.ipv4.ip_nonlocal_bind` set would always say yes.
/// * `probe_link` cannot tell (no command asks the link): a new leader
///   waits the whole handover before it runs `if_up_cmd`.
///
/// **It cannot enforce a lifetime.** pgpool's commands add an address
/// forever: a pgha that is killed, frozen or cut off keeps it until
/// something runs `if_down_cmd`, and the new holder's address is then on
/// two hosts — clients reach whichever answered ARP last. pgpool-II showed
/// exactly that in every fault tried. An `if_up_cmd` that sets a lifetime
/// (`valid_lft`) does not help: renewals run no command, so the address
/// would vanish under a healthy holder. Prefer
/// [`NetlinkMover`](crate::NetlinkMover), which has the kernel enforce the
/// lease,
/// wherever it can run.
#[derive(Debug)]
pub struct CommandMover {
    up: ShellTemplate<Placeholder>,
    down: ShellTemplate<Placeholder>,
    arping: Option<ShellTemplate<Placeholder>>,
    timeout: Duration,
    /// Whether `if_up_cmd` succeeded since the last `if_down_cmd`.
    added: AtomicBool,
}

/// What a `$_X_$` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Ip,
    Interface,
    Prefix,
}

/// pgpool's syntax: `$_NAME_$`.
fn scan(rest: &str, at: usize) -> Scan<Placeholder> {
    let Some(tail) = rest.strip_prefix("$_") else {
        return Scan::Text;
    };
    let Some(end) = tail.find("_$") else {
        return Scan::Text;
    };
    let name = &tail[..end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase()) {
        return Scan::Text;
    }
    let len = 2 + end + 2;
    match name {
        "IP" => Scan::Placeholder(Placeholder::Ip, len),
        "IF" => Scan::Placeholder(Placeholder::Interface, len),
        "PREFIX" => Scan::Placeholder(Placeholder::Prefix, len),
        _ => Scan::Invalid(format!(
            "unknown placeholder $_{name}_$ at byte {at} (known: $_IP_$, $_IF_$, $_PREFIX_$)"
        )),
    }
}

fn value(addr: &VipAddress, placeholder: Placeholder) -> String {
    match placeholder {
        Placeholder::Ip => addr.ip().to_string(),
        Placeholder::Interface => addr.interface().to_string(),
        Placeholder::Prefix => addr.prefix_len().to_string(),
    }
}

impl CommandMover {
    /// A mover running the commands of `config`; fails with
    /// [`Error::Config`] on an unknown or quoted placeholder, or a zero
    /// timeout.
    pub fn new(config: CommandMoverConfig) -> Result<Self, Error> {
        if config.timeout.is_zero() {
            return Err(Error::Config {
                what: "timeout: must be more than 0".to_string(),
            });
        }
        let parse = |setting: &str, command: &str| {
            ShellTemplate::parse(setting, command, scan).map_err(|e| match e {
                pgha_core::Error::Config { what } => Error::Config { what },
                other => Error::Config {
                    what: other.to_string(),
                },
            })
        };
        Ok(CommandMover {
            up: parse("if_up_cmd", &config.if_up_cmd)?,
            down: parse("if_down_cmd", &config.if_down_cmd)?,
            arping: config
                .arping_cmd
                .as_deref()
                .map(|c| parse("arping_cmd", c))
                .transpose()?,
            timeout: config.timeout,
            added: AtomicBool::new(false),
        })
    }

    /// The command line `if_up_cmd` runs for `addr`.
    ///
    /// ```
    /// use pgha_vip::{CommandMover, CommandMoverConfig, VipAddress};
    ///
    /// let mover = CommandMover::new(CommandMoverConfig::new(
    ///     "ip addr add $_IP_$/$_PREFIX_$ dev $_IF_$ label $_IF_$:0",
    ///     "ip addr del $_IP_$/$_PREFIX_$ dev $_IF_$",
    /// ))?;
    /// let vip = VipAddress::new([192, 0, 2, 50], 24, "ens33")?;
    /// assert_eq!(
    ///     mover.up_command_line(&vip),
    ///     "ip addr add '192.0.2.50'/'24' dev 'ens33' label 'ens33':0",
    /// );
    /// # Ok::<(), pgha_vip::Error>(())
    /// ```
    pub fn up_command_line(&self, addr: &VipAddress) -> String {
        self.up.render(|p| value(addr, p))
    }

    async fn run(
        &self,
        operation: &'static str,
        template: &ShellTemplate<Placeholder>,
        addr: &VipAddress,
    ) -> Result<(), Error> {
        let line = template.render(|p| value(addr, p));
        let subject = addr.to_string();
        pgha_core::run_command(operation, &subject, &line, self.timeout)
            .await
            .map_err(|e| Error::from_core(operation, subject, e))
    }
}

/// Whether a socket can be bound to `ip`: the address is configured on
/// this host (in this network namespace).
fn bindable(operation: &'static str, addr: &VipAddress) -> Result<bool, Error> {
    match UdpSocket::bind(SocketAddr::new(addr.ip(), 0)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Ok(false),
        Err(e) if matches!(addr.ip(), IpAddr::V6(_)) && e.raw_os_error() == Some(libc::EINVAL) => {
            Ok(false)
        }
        Err(e) => Err(Error::io(format!("{operation} {addr}: binding to it"), e)),
    }
}

#[async_trait]
impl AddressMover for CommandMover {
    async fn acquire(&self, addr: &VipAddress, _lifetime: Duration) -> Result<(), Error> {
        if bindable("acquire", addr)? {
            return Ok(());
        }
        self.run("acquire", &self.up, addr).await?;
        self.added.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn release(&self, addr: &VipAddress) -> Result<(), Error> {
        if !bindable("release", addr)? && !self.added.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.run("release", &self.down, addr).await?;
        self.added.store(false, Ordering::SeqCst);
        Ok(())
    }

    async fn announce(&self, addr: &VipAddress) -> Result<(), Error> {
        match &self.arping {
            Some(arping) => self.run("announce", arping, addr).await,
            None => Ok(()),
        }
    }

    async fn holds(&self, addr: &VipAddress) -> Result<bool, Error> {
        bindable("holds", addr)
    }

    fn name(&self) -> &str {
        "command"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

    use super::*;

    fn vip() -> VipAddress {
        VipAddress::new([192, 0, 2, 50], 24, "ens33").unwrap()
    }

    #[test]
    fn renders_the_seed_commands() {
        // (template, rendered for 192.0.2.50/24 on ens33)
        let cases = [
            (
                "ip addr add $_IP_$/24 dev ens33 label ens33:0",
                "ip addr add '192.0.2.50'/24 dev ens33 label ens33:0",
            ),
            (
                "arping -U $_IP_$ -w 1 -I ens33",
                "arping -U '192.0.2.50' -w 1 -I ens33",
            ),
            (
                "sudo ip addr del $_IP_$/$_PREFIX_$ dev $_IF_$",
                "sudo ip addr del '192.0.2.50'/'24' dev 'ens33'",
            ),
            ("echo $_ $HOME $_IPX", "echo $_ $HOME $_IPX"),
            ("echo $_ip_$", "echo $_ip_$"),
        ];
        for (template, rendered) in cases {
            let parsed = ShellTemplate::parse("if_up_cmd", template, scan).unwrap();
            assert_eq!(parsed.render(|p| value(&vip(), p)), rendered, "{template}");
        }
    }

    #[test]
    fn rejects_unknown_and_quoted_placeholders() {
        // (template, part of the error)
        let cases = [
            (
                "ip addr add $_VIP_$/24",
                "unknown placeholder $_VIP_$ at byte 12",
            ),
            (
                "ip addr add \"$_IP_$\"/24",
                "$_IP_$ at byte 13 is quoted or escaped",
            ),
            ("ip addr add '$_IP_$'/24", "is quoted or escaped"),
        ];
        for (template, expected) in cases {
            let error = CommandMover::new(CommandMoverConfig::new(template, "true"))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected) && error.contains("if_up_cmd"),
                "{template}: {error}"
            );
        }
        let mut zero = CommandMoverConfig::new("true", "true");
        zero.timeout = Duration::ZERO;
        assert!(CommandMover::new(zero).is_err());
    }

    #[tokio::test]
    async fn a_failing_command_is_an_error_naming_the_address() {
        let mover = CommandMover::new(CommandMoverConfig::new(
            "echo no such device $_IF_$ >&2; exit 2",
            "true",
        ))
        .unwrap();
        // TEST-NET-1: never configured on a test machine.
        let error = mover
            .acquire(&vip(), Duration::from_secs(1))
            .await
            .unwrap_err();
        match &error {
            Error::Command { status, output, .. } => {
                assert!(status.contains('2'), "{status}");
                assert_eq!(output, "no such device ens33");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            error
                .to_string()
                .starts_with("acquire 192.0.2.50/24 on ens33: `echo"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_at_its_timeout() {
        let mut config = CommandMoverConfig::new("true", "true");
        config.arping_cmd = Some("sleep 30".into());
        config.timeout = Duration::from_millis(100);
        let mover = CommandMover::new(config).unwrap();
        let started = std::time::Instant::now();
        let error = mover.announce(&vip()).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(error, Error::Command { ref status, .. } if status.starts_with("timed out")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn cannot_tell_whether_another_host_has_the_address() {
        // No command asks the link: a new leader waits the handover out.
        let mover = CommandMover::new(CommandMoverConfig::new("false", "false")).unwrap();
        let probed = mover
            .probe_link(&vip(), Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(probed, crate::LinkProbe::CannotTell);
    }
}
