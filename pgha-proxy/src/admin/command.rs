//! Admin console commands and their parser.
//!
//! The grammar is tiny, so the parser works on the crate's SQL
//! [`Lexer`]: comments and whitespace fall away, `;` separates statements,
//! keywords compare case-insensitively as PostgreSQL folds them.

use std::fmt;

use pgha_core::{Command, NodeId};

use crate::classify::lexer::{Lexer, Token, TokenKind};

/// What `SHOW` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShowWhat {
    /// `SHOW NODES`: every backend node as the cluster model sees it.
    Nodes,
    /// `SHOW POOL_NODES`: the nodes with pgpool-II's columns.
    PoolNodes,
    /// `SHOW POOLS`: one row per pool.
    Pools,
    /// `SHOW CLIENTS`: one row per client connection.
    Clients,
    /// `SHOW SERVERS`: one row per server connection.
    Servers,
    /// `SHOW STATS`: counters per node.
    Stats,
    /// `SHOW CONFIG`: the proxy's settings.
    Config,
    /// `SHOW HELP`: the commands of the console.
    Help,
    /// `SHOW STATUS`: the cluster in one table — each node with its role,
    /// the term, lag, held writes, and who leads.
    Status,
}

impl ShowWhat {
    /// Every target with its keyword, in the order `SHOW HELP` lists them.
    pub const ALL: [(ShowWhat, &'static str); 9] = [
        (ShowWhat::Nodes, "NODES"),
        (ShowWhat::Status, "STATUS"),
        (ShowWhat::PoolNodes, "POOL_NODES"),
        (ShowWhat::Pools, "POOLS"),
        (ShowWhat::Clients, "CLIENTS"),
        (ShowWhat::Servers, "SERVERS"),
        (ShowWhat::Stats, "STATS"),
        (ShowWhat::Config, "CONFIG"),
        (ShowWhat::Help, "HELP"),
    ];

    /// The keyword after `SHOW`.
    pub fn keyword(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(what, _)| *what == self)
            .map_or("", |(_, keyword)| keyword)
    }
}

/// One statement of the admin console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// `SHOW <what>`: a result set, no side effect.
    Show(ShowWhat),
    /// `PAUSE`: hold new requests until `RESUME`.
    Pause,
    /// `RESUME`: let held requests go.
    Resume,
    /// `RELOAD`: read the configuration again.
    Reload,
    /// `PROMOTE node`, `SWITCHOVER [node]`, `ATTACH node`, `DETACH node`:
    /// an operator command for the cluster monitor.
    Cluster(Command),
}

/// What the session must do for a command. `Pause` and `Resume` come after
/// their answer; the others are answered by the session once done
/// ([`super::respond_outcome`]), since the answer depends on how they went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAction {
    /// Stop handing server connections to clients (running transactions
    /// finish; new requests wait).
    Pause,
    /// Hand server connections out again.
    Resume,
    /// Reload the configuration.
    Reload,
    /// Run an operator command on the cluster monitor.
    Cluster(Command),
}

impl AdminCommand {
    /// The side effect the session performs for this command, if any.
    pub fn action(&self) -> Option<AdminAction> {
        match self {
            AdminCommand::Show(_) => None,
            AdminCommand::Pause => Some(AdminAction::Pause),
            AdminCommand::Resume => Some(AdminAction::Resume),
            AdminCommand::Reload => Some(AdminAction::Reload),
            AdminCommand::Cluster(command) => Some(AdminAction::Cluster(command.clone())),
        }
    }

    /// Whether the answer waits for the command to be carried out: such a
    /// command must be alone in its query string.
    pub fn acts(&self) -> bool {
        matches!(self, AdminCommand::Reload | AdminCommand::Cluster(_))
    }

    /// The `CommandComplete` tag (as PgBouncer sends them).
    pub fn tag(&self) -> &'static str {
        match self {
            AdminCommand::Show(_) => "SHOW",
            AdminCommand::Pause => "PAUSE",
            AdminCommand::Resume => "RESUME",
            AdminCommand::Reload => "RELOAD",
            AdminCommand::Cluster(command) => cluster_tag(command),
        }
    }
}

/// The keyword (and `CommandComplete` tag) of an operator command.
pub fn cluster_tag(command: &Command) -> &'static str {
    match command {
        Command::Promote { .. } => "PROMOTE",
        Command::Switchover { .. } => "SWITCHOVER",
        Command::Attach { .. } => "ATTACH",
        Command::Detach { .. } => "DETACH",
        Command::Maintenance { enabled: true, .. } => "MAINTENANCE ON",
        Command::Maintenance { enabled: false, .. } => "MAINTENANCE OFF",
    }
}

impl fmt::Display for AdminCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminCommand::Show(what) => write!(f, "SHOW {}", what.keyword()),
            AdminCommand::Cluster(
                Command::Promote { node }
                | Command::Attach { node }
                | Command::Detach { node }
                | Command::Switchover { target: Some(node) },
            ) => write!(f, "{} {node}", self.tag()),
            other => f.write_str(other.tag()),
        }
    }
}

/// Why an admin query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Not a statement of the console (`near` is the offending token, or
    /// empty at the end of the input).
    #[error("syntax error {}", syntax_at(.near))]
    Syntax {
        /// The token where parsing stopped (shortened).
        near: String,
    },
    /// `SHOW` of something the console does not list.
    #[error("SHOW {what} is not supported by the pgha admin console")]
    UnknownShow {
        /// The target asked for (shortened).
        what: String,
    },
    /// `PAUSE` while already paused.
    #[error("already paused")]
    AlreadyPaused,
    /// `RESUME` while not paused.
    #[error("not paused")]
    NotPaused,
    /// A command that acts on the cluster or the configuration shared its
    /// query string with other statements; none of them ran.
    #[error("{command} must be the only statement of its query string")]
    NotAlone {
        /// The command's keyword.
        command: &'static str,
    },
}

impl AdminError {
    /// The SQLSTATE the client is sent.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AdminError::Syntax { .. } => "42601",
            AdminError::UnknownShow { .. } | AdminError::NotAlone { .. } => "0A000",
            // object_not_in_prerequisite_state
            AdminError::AlreadyPaused | AdminError::NotPaused => "55000",
        }
    }

    /// What would have worked, for the error's hint.
    pub fn hint(&self) -> &'static str {
        match self {
            AdminError::Syntax { .. } | AdminError::UnknownShow { .. } => COMMANDS_HINT,
            AdminError::AlreadyPaused => "RESUME lets held requests go",
            AdminError::NotPaused => "PAUSE holds new requests",
            AdminError::NotAlone { .. } => "send it as a query string of its own",
        }
    }
}

/// The hint of a refused command: the whole grammar in one line.
const COMMANDS_HINT: &str = "commands: SHOW NODES | STATUS | POOL_NODES | POOLS | CLIENTS \
                             | SERVERS | STATS | CONFIG | HELP; PAUSE; RESUME; RELOAD; \
                             PROMOTE node; SWITCHOVER [node]; ATTACH node; DETACH node";

/// Longest piece of user input echoed back in an error: a huge garbage
/// query must not come back whole.
const ECHO_LIMIT: usize = 64;

/// Where a syntax error is, worded as PostgreSQL words it.
fn syntax_at(near: &str) -> String {
    if near.is_empty() {
        "at end of input".to_owned()
    } else {
        format!("at or near \"{near}\"")
    }
}

/// User input fit to quote in an error: shortened, and control characters
/// escaped — a NUL would end the message's C string early.
fn echo(text: &str) -> String {
    let mut shown = String::new();
    for c in text.chars().take(ECHO_LIMIT) {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Parses a query string holding exactly one statement (a trailing `;`
/// and comments allowed).
///
/// ```
/// use pgha_proxy::admin::{parse, AdminCommand, ShowWhat};
///
/// assert_eq!(parse(" show  Pool_Nodes ; -- pgpool's view"), Ok(AdminCommand::Show(ShowWhat::PoolNodes)));
/// assert_eq!(parse("PAUSE").map(|c| c.action().is_some()), Ok(true));
/// assert_eq!(parse("SHOW TABLES").map_err(|e| e.sqlstate()), Err("0A000"));
/// assert_eq!(parse("PAUSE; RESUME").map_err(|e| e.sqlstate()), Err("42601"));
/// ```
pub fn parse(sql: &str) -> Result<AdminCommand, AdminError> {
    let mut commands = parse_all(sql)?.into_iter();
    match (commands.next(), commands.next()) {
        (Some(command), None) => Ok(command),
        (None, _) => Err(AdminError::Syntax {
            near: String::new(),
        }),
        (Some(_), Some(second)) => Err(AdminError::Syntax {
            near: echo(&second.to_string()),
        }),
    }
}

/// Parses every statement of a query string, in order; empty statements
/// (`;;`, comments alone) are skipped. The first bad statement fails the
/// whole string, so nothing of a string with a typo runs.
pub fn parse_all(sql: &str) -> Result<Vec<AdminCommand>, AdminError> {
    let commands = parse_statements(sql)?;
    if commands.len() > 1 {
        if let Some(acting) = commands.iter().find(|c| c.acts()) {
            return Err(AdminError::NotAlone {
                command: acting.tag(),
            });
        }
    }
    Ok(commands)
}

fn parse_statements(sql: &str) -> Result<Vec<AdminCommand>, AdminError> {
    let mut commands = Vec::new();
    let mut statement: Vec<Token<'_>> = Vec::new();
    for token in Lexer::new(sql).filter(|t| !t.is_comment()) {
        if token.is_punct(b';') {
            if !statement.is_empty() {
                commands.push(statement_command(&statement)?);
                statement.clear();
            }
        } else {
            statement.push(token);
        }
    }
    if !statement.is_empty() {
        commands.push(statement_command(&statement)?);
    }
    Ok(commands)
}

/// One statement's tokens (not empty, no comment, no `;`) as a command.
fn statement_command(tokens: &[Token<'_>]) -> Result<AdminCommand, AdminError> {
    let (first, rest) = match tokens.split_first() {
        Some((first, rest)) if first.kind == TokenKind::Word => (first, rest),
        Some((first, _)) => return Err(syntax_near(Some(first))),
        None => return Err(syntax_near(None)),
    };
    let (command, rest) = if first.is_word("SHOW") {
        let Some((target, rest)) = rest.split_first() else {
            return Err(syntax_near(None));
        };
        if target.kind != TokenKind::Word {
            return Err(syntax_near(Some(target)));
        }
        let what = ShowWhat::ALL
            .iter()
            .find(|(_, keyword)| target.is_word(keyword))
            .map(|(what, _)| *what)
            .ok_or_else(|| AdminError::UnknownShow {
                what: echo(target.text),
            })?;
        (AdminCommand::Show(what), rest)
    } else if first.is_word("PAUSE") {
        (AdminCommand::Pause, rest)
    } else if first.is_word("RESUME") {
        (AdminCommand::Resume, rest)
    } else if first.is_word("RELOAD") {
        (AdminCommand::Reload, rest)
    } else if first.is_word("PROMOTE") {
        let (node, rest) = node_name(rest)?;
        (AdminCommand::Cluster(Command::Promote { node }), rest)
    } else if first.is_word("ATTACH") {
        let (node, rest) = node_name(rest)?;
        (AdminCommand::Cluster(Command::Attach { node }), rest)
    } else if first.is_word("DETACH") {
        let (node, rest) = node_name(rest)?;
        (AdminCommand::Cluster(Command::Detach { node }), rest)
    } else if first.is_word("SWITCHOVER") {
        if rest.is_empty() {
            (
                AdminCommand::Cluster(Command::Switchover { target: None }),
                rest,
            )
        } else {
            let (node, rest) = node_name(rest)?;
            let target = Some(node);
            (AdminCommand::Cluster(Command::Switchover { target }), rest)
        }
    } else {
        return Err(syntax_near(Some(first)));
    };
    // Nothing after a command's arguments (PgBouncer's per-database PAUSE
    // has no meaning for one proxy in front of one cluster).
    match rest.first() {
        None => Ok(command),
        Some(extra) => Err(syntax_near(Some(extra))),
    }
}

/// A node's name: a bare word (as written: node names are not folded), a
/// `"quoted identifier"` or a `'string'`, so names with `-` or spaces can
/// be given.
fn node_name<'a, 'b>(tokens: &'b [Token<'a>]) -> Result<(NodeId, &'b [Token<'a>]), AdminError> {
    let Some((token, rest)) = tokens.split_first() else {
        return Err(syntax_near(None));
    };
    let name = match token.kind {
        TokenKind::Word => Some(token.text.to_owned()),
        TokenKind::QuotedIdent => unquote(token.text, '"'),
        TokenKind::String => unquote(token.text, '\''),
        _ => None,
    }
    // A name is echoed in answers: no control characters (a NUL would
    // end the message's C string), no more than PostgreSQL's NAMEDATALEN.
    .filter(|name| !name.is_empty() && name.len() <= 63 && !name.chars().any(char::is_control))
    .ok_or_else(|| syntax_near(Some(token)))?;
    Ok((NodeId::new(name), rest))
}

/// The text inside `q…q` with doubled quotes undone; `None` for any other
/// form (`E'…'`, `U&"…"`, dollar quoting), which names never need.
fn unquote(text: &str, q: char) -> Option<String> {
    let inner = text.strip_prefix(q)?.strip_suffix(q)?;
    let doubled = format!("{q}{q}");
    Some(inner.replace(&doubled, &q.to_string()))
}

fn syntax_near(token: Option<&Token<'_>>) -> AdminError {
    AdminError::Syntax {
        near: token.map_or_else(String::new, |t| echo(t.text)),
    }
}
