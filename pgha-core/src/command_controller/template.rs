//! Command lines with pgpool-II placeholders: parsed once, rendered with
//! every value shell-quoted.

use std::path::PathBuf;

use super::shell_template::{Scan, ShellTemplate};
use crate::{Error, NodeId, NodeState};

/// An operator's command line with pgpool-II `%x` placeholders, checked
/// when it is parsed and rendered into a `sh -c` script.
///
/// | placeholder | value |
/// |---|---|
/// | `%d` `%h` `%p` `%D` | id, host, port, data directory of the node the command is about ([`CommandValues::node`]) |
/// | `%m` `%H` `%r` `%R` | id, host, port, data directory of the new main (primary) node |
/// | `%M` `%P` | id of the old main node, of the old primary (the same node in pgha) |
/// | `%N` `%S` | host and port of the old primary |
/// | `%%` | a literal `%` |
///
/// It is a [`ShellTemplate`] with pgpool's `%x` syntax. Every value is
/// inserted as one single-quoted shell word, so no value
/// (a host name, a data directory) can ever add shell syntax. An unknown
/// id renders as `-1` (pgpool's "no such node"), any other unknown value
/// as an empty word `''`.
///
/// Because the quoting only works where the shell would read a bare word,
/// [`parse`](Self::parse) rejects placeholders inside `'…'`, `"…"` or
/// backticks, right after a backslash, and in templates with here-documents
/// (`<<`); it rejects any other `%x` and a lone trailing `%` too.
///
/// ```
/// use pgha_core::{CommandNode, CommandTemplate, CommandValues, NodeState, Role};
///
/// let template = CommandTemplate::parse("promote_command", "/etc/pgha/failover.sh %d %h %m %H 100%%")?;
/// let old = NodeState::new("node0", Role::Primary, "db0.example", 5432);
/// let new = NodeState::new("node1", Role::Standby, "it's-db1", 5432);
/// let values = CommandValues {
///     node: Some(CommandNode::new(&old, None)),
///     new_main: Some(CommandNode::new(&new, None)),
///     old_primary: Some(CommandNode::new(&old, None)),
/// };
/// assert_eq!(
///     template.render(&values),
///     r"/etc/pgha/failover.sh 'node0' 'db0.example' 'node1' 'it'\''s-db1' 100%",
/// );
/// assert!(CommandTemplate::parse("promote_command", "failover.sh %x").is_err());
/// assert!(CommandTemplate::parse("promote_command", "failover.sh '%h'").is_err());
/// # Ok::<(), pgha_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate(ShellTemplate<Placeholder>);

/// The nodes a rendered command talks about; `None` where unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandValues {
    /// The node the command is about (`%d %h %p %D`).
    pub node: Option<CommandNode>,
    /// The new main (primary) node (`%m %H %r %R`).
    pub new_main: Option<CommandNode>,
    /// The old primary (`%M %P %N %S`).
    pub old_primary: Option<CommandNode>,
}

/// What a command may say about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandNode {
    /// Its name.
    pub id: NodeId,
    /// Its host.
    pub host: String,
    /// Its PostgreSQL port.
    pub port: u16,
    /// Its data directory, when configured.
    pub data_dir: Option<PathBuf>,
}

impl CommandNode {
    /// The command's view of `node`.
    pub fn new(node: &NodeState, data_dir: Option<PathBuf>) -> Self {
        CommandNode {
            id: node.id.clone(),
            host: node.host.clone(),
            port: node.port,
            data_dir,
        }
    }
}

/// Which node a placeholder is about, and which of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Node(Field),
    NewMain(Field),
    OldPrimary(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Host,
    Port,
    DataDir,
}

impl Placeholder {
    fn from_letter(letter: char) -> Option<Self> {
        use Field::*;
        use Placeholder::*;
        Some(match letter {
            'd' => Node(Id),
            'h' => Node(Host),
            'p' => Node(Port),
            'D' => Node(DataDir),
            'm' => NewMain(Id),
            'H' => NewMain(Host),
            'r' => NewMain(Port),
            'R' => NewMain(DataDir),
            // pgpool's "main node" is the primary in streaming replication.
            'M' | 'P' => OldPrimary(Id),
            'N' => OldPrimary(Host),
            'S' => OldPrimary(Port),
            _ => return None,
        })
    }

    fn value(self, values: &CommandValues) -> String {
        let (node, field) = match self {
            Placeholder::Node(f) => (&values.node, f),
            Placeholder::NewMain(f) => (&values.new_main, f),
            Placeholder::OldPrimary(f) => (&values.old_primary, f),
        };
        match (node, field) {
            (Some(n), Field::Id) => n.id.to_string(),
            (None, Field::Id) => "-1".to_string(),
            (Some(n), Field::Host) => n.host.clone(),
            (Some(n), Field::Port) => n.port.to_string(),
            (Some(n), Field::DataDir) => n
                .data_dir
                .as_ref()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (None, _) => String::new(),
        }
    }
}

/// pgpool's syntax: `%x` is a placeholder, `%%` a literal `%`.
fn scan(rest: &str, at: usize) -> Scan<Placeholder> {
    let mut chars = rest.chars();
    if chars.next() != Some('%') {
        return Scan::Text;
    }
    match chars.next() {
        None => Scan::Invalid(format!("lone % at byte {at} (write %% for a %)")),
        Some('%') => Scan::Literal('%', 2),
        Some(letter) => match Placeholder::from_letter(letter) {
            Some(placeholder) => Scan::Placeholder(placeholder, 1 + letter.len_utf8()),
            None => Scan::Invalid(format!("unknown placeholder %{letter} at byte {at}")),
        },
    }
}

impl CommandTemplate {
    /// Parses `template`, the value of the setting `setting` (named in
    /// errors). Fails with [`Error::Config`] on an unknown `%x`, a lone
    /// trailing `%`, or a placeholder where quoting cannot protect it.
    pub fn parse(setting: &str, template: &str) -> Result<Self, Error> {
        ShellTemplate::parse(setting, template, scan).map(CommandTemplate)
    }

    /// The command line with every placeholder replaced by its quoted
    /// value: the script `sh -c` runs.
    pub fn render(&self, values: &CommandValues) -> String {
        self.0.render(|p| p.value(values))
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
