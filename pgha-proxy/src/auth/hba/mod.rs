//! pg_hba.conf-style rules: which [`Method`] a client must use.
//!
//! ```text
//! # TYPE    DATABASE     USER         ADDRESS          METHOD
//! local     all          all                           trust
//! hostssl   app,reports  alice,bob    10.0.0.0/8       scram-sha-256
//! host      sameuser     all          ::1/128          md5
//! host      all          all          192.168.0.0 255.255.0.0  md5
//! host      all          all          all              reject
//! ```
//!
//! TYPE is `local`, `host`, `hostssl` or `hostnossl`. DATABASE is `all`,
//! `sameuser` or a comma list; USER is `all` or a comma list; a quoted name
//! (`"all"`) is a literal name. ADDRESS (absent for `local`) is `all`, a
//! CIDR (IPv4 or IPv6), or an address followed by a netmask column. METHOD
//! is `trust`, `reject`, `md5`, `scram-sha-256` or `password`. What
//! PostgreSQL allows but the proxy cannot honour (`+group`, `@file`,
//! `samerole`, host names, `peer`, options…) is an error, never ignored.

use std::fmt;
use std::net::IpAddr;

use super::Method;

mod parse;
use parse::parse_line;

/// The connection type a rule applies to (its first column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnType {
    /// `local`: Unix-domain socket.
    Local,
    /// `host`: TCP, with or without TLS.
    Host,
    /// `hostssl`: TCP with TLS.
    HostSsl,
    /// `hostnossl`: TCP without TLS.
    HostNoSsl,
}

/// A DATABASE or USER column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    All,
    /// Any of these names; `sameuser` (DATABASE only) is `None`.
    List(Vec<Option<String>>),
}

impl Names {
    fn matches(&self, name: &str, user: &str) -> bool {
        match self {
            Names::All => true,
            Names::List(items) => items.iter().any(|i| match i {
                Some(n) => n == name,
                None => name == user,
            }),
        }
    }
}

/// An ADDRESS column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Address {
    All,
    Net { net: IpAddr, prefix: u8 },
}

impl Address {
    fn matches(&self, addr: IpAddr) -> bool {
        match *self {
            Address::All => true,
            Address::Net { net, prefix } => match (net, canonical(addr)) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                    u32::from(n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                    u128::from(n) & mask == u128::from(a) & mask
                }
                // A rule written as an IPv4-mapped network
                // (`::ffff:10.0.0.0/104`) for a client seen as IPv4.
                (IpAddr::V6(n), IpAddr::V4(a)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                    u128::from(n) & mask == u128::from(a.to_ipv6_mapped()) & mask
                }
                _ => false,
            },
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack
/// listener reports for an IPv4 client) is matched as the IPv4 address.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaRule {
    line: usize,
    conn: ConnType,
    databases: Names,
    users: Names,
    /// `None` for `local`.
    address: Option<Address>,
    method: Method,
}

impl HbaRule {
    /// The line the rule was read from (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    /// The connection type.
    pub fn conn_type(&self) -> ConnType {
        self.conn
    }

    /// The method the rule prescribes.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Whether the rule applies to `client`.
    pub fn matches(&self, client: &ClientInfo<'_>) -> bool {
        let conn_ok = match (self.conn, client.addr) {
            (ConnType::Local, addr) => addr.is_none(),
            (_, None) => false,
            (ConnType::Host, Some(_)) => true,
            (ConnType::HostSsl, Some(_)) => client.ssl,
            (ConnType::HostNoSsl, Some(_)) => !client.ssl,
        };
        conn_ok
            && self.databases.matches(client.database, client.user)
            && self.users.matches(client.user, client.user)
            && match (self.address, client.addr) {
                (Some(a), Some(addr)) => a.matches(addr),
                _ => true,
            }
    }
}

/// Who is connecting, as the startup phase learnt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo<'a> {
    /// The client's address; `None` for a Unix-domain socket.
    pub addr: Option<IpAddr>,
    /// Whether the connection is TLS.
    pub ssl: bool,
    /// The database from the startup packet.
    pub database: &'a str,
    /// The user from the startup packet.
    pub user: &'a str,
}

/// A line of an hba file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct HbaError {
    /// The name of the file (or other source) given to [`HbaRules::parse`].
    pub source_name: String,
    /// The line, 1-based.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// An ordered list of hba rules; the first that matches a client decides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HbaRules {
    rules: Vec<HbaRule>,
}

impl HbaRules {
    /// Parses hba text. Every bad line is reported, each as
    /// `source_name:line: what is wrong`.
    pub fn parse(text: &str, source_name: &str) -> Result<HbaRules, Vec<HbaError>> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match parse_line(line, i + 1) {
                Ok(Some(rule)) => rules.push(rule),
                Ok(None) => {}
                Err(message) => errors.push(HbaError {
                    source_name: source_name.to_owned(),
                    line: i + 1,
                    message,
                }),
            }
        }
        if errors.is_empty() {
            Ok(HbaRules { rules })
        } else {
            Err(errors)
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[HbaRule] {
        &self.rules
    }

    /// The first rule that matches `client`, if any.
    pub fn rule_for(&self, client: &ClientInfo<'_>) -> Option<&HbaRule> {
        self.rules.iter().find(|r| r.matches(client))
    }

    /// The method of the first rule that matches `client`; no match is
    /// [`Method::Reject`], as in PostgreSQL.
    pub fn method_for(&self, client: &ClientInfo<'_>) -> Method {
        self.rule_for(client)
            .map_or(Method::Reject, HbaRule::method)
    }
}

impl fmt::Display for ConnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnType::Local => "local",
            ConnType::Host => "host",
            ConnType::HostSsl => "hostssl",
            ConnType::HostNoSsl => "hostnossl",
        })
    }
}
