//! What every mapper shares: the parsed file, which of its lines have been
//! carried over, the problems found, and the commented TOML being written.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use super::pgpool_conf::{Entry, LineError, PgpoolConf, Value};

/// The pgpool.conf being imported, and what has been taken from it.
pub(super) struct Ctx<'a> {
    conf: &'a PgpoolConf,
    /// Indices (into `conf.entries`) carried over or explained already.
    used: BTreeSet<usize>,
    /// Values pgpool itself would refuse: the import fails with them.
    pub problems: Vec<LineError>,
    /// What the operator must look at, as `line: message`.
    pub warnings: Vec<(usize, String)>,
}

impl<'a> Ctx<'a> {
    pub fn new(conf: &'a PgpoolConf) -> Self {
        Ctx {
            conf,
            used: BTreeSet::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The setting that counts for `key`, marking every line that sets it
    /// as handled.
    pub fn take(&mut self, key: &str) -> Option<&'a Entry> {
        for (i, entry) in self.conf.entries.iter().enumerate() {
            if entry.key == key {
                self.used.insert(i);
            }
        }
        self.conf.get(key)
    }

    /// The setting for `key` without marking it handled.
    pub fn peek(&self, key: &str) -> Option<&'a Entry> {
        self.conf.get(key)
    }

    /// A boolean setting; a value pgpool would refuse is a problem.
    pub fn bool(&mut self, key: &str) -> Option<(bool, &'a Entry)> {
        let entry = self.take(key)?;
        match entry.value.as_bool() {
            Some(b) => Some((b, entry)),
            None => {
                self.bad(entry, "on or off");
                None
            }
        }
    }

    /// An integer setting of at least `min`.
    pub fn int(&mut self, key: &str, min: i64) -> Option<(i64, &'a Entry)> {
        let entry = self.take(key)?;
        match entry.value.as_int() {
            Some(n) if n >= min => Some((n, entry)),
            _ => {
                self.bad(entry, &format!("an integer of at least {min}"));
                None
            }
        }
    }

    /// A duration setting whose bare numbers count in `unit`.
    pub fn duration(&mut self, key: &str, unit: Duration) -> Option<(Duration, &'a Entry)> {
        let entry = self.take(key)?;
        match entry.value.as_duration(unit) {
            Some(d) => Some((d, entry)),
            None => {
                let unit_name = if unit == Duration::from_millis(1) {
                    "milliseconds"
                } else {
                    "seconds"
                };
                self.bad(
                    entry,
                    &format!("a duration ({unit_name}, or with a unit: ms, s, min, h, d)"),
                );
                None
            }
        }
    }

    /// A text setting (any kind of value, as text).
    pub fn text(&mut self, key: &str) -> Option<(String, &'a Entry)> {
        let entry = self.take(key)?;
        Some((entry.value.text(), entry))
    }

    fn bad(&mut self, entry: &Entry, expected: &str) {
        self.problems.push(LineError {
            line: entry.line,
            message: format!(
                "{}: {} is not {expected} (pgpool would refuse it too)",
                entry.key, entry.value
            ),
        });
    }

    /// Adds a warning about `entry`'s line.
    pub fn warn(&mut self, entry: &Entry, message: impl Into<String>) {
        self.warnings.push((entry.line, message.into()));
    }

    /// Every setting not yet handled, in file order.
    pub fn rest(&self) -> impl Iterator<Item = &'a Entry> + '_ {
        self.conf
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.used.contains(i))
            .map(|(_, e)| e)
    }

    /// Every setting, handled or not.
    pub fn entries(&self) -> &'a [Entry] {
        &self.conf.entries
    }

    /// Marks `entry` as handled.
    pub fn mark(&mut self, entry: &Entry) {
        for (i, e) in self.conf.entries.iter().enumerate() {
            if e.line == entry.line {
                self.used.insert(i);
            }
        }
    }
}

/// How a pgpool setting is named in comments: `key = value (line N)`; a
/// password or key is shown as `'…'`, never copied into a comment.
pub(super) fn origin(entry: &Entry) -> String {
    let secret = ["password", "authkey"]
        .iter()
        .any(|s| entry.key.contains(s));
    if secret && !is_empty(&entry.value) {
        format!("{} = '…' (line {})", entry.key, entry.line)
    } else {
        format!("{} = {} (line {})", entry.key, entry.value, entry.line)
    }
}

/// The same for several settings.
pub(super) fn origins(entries: &[&Entry]) -> String {
    entries
        .iter()
        .map(|e| origin(e))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A commented TOML document being written.
#[derive(Debug, Default)]
pub(super) struct Toml {
    text: String,
}

impl Toml {
    /// A table header (`[proxy]`, `[[node]]`), after a blank line.
    pub fn table(&mut self, header: &str) {
        self.text.push('\n');
        self.text.push_str(header);
        self.text.push('\n');
    }

    /// A comment, wrapped at 78 columns; blank input lines are kept.
    pub fn comment(&mut self, text: &str) {
        // "(line 12)" stays on one line, so it can be searched for; so does
        // a `command`, so it can be copied.
        let text = text.replace("(line ", "(line\u{a0}");
        let parts: Vec<&str> = text.split('`').collect();
        let mut joined = String::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                joined.push('`');
            }
            // An odd part is inside backticks, unless it is an unclosed
            // last one.
            if i % 2 == 1 && i + 1 < parts.len() {
                joined.push_str(&part.replace(' ', "\u{a0}"));
            } else {
                joined.push_str(part);
            }
        }
        let text = joined;
        for paragraph in text.lines() {
            let mut line = String::from("#");
            for word in paragraph.split_ascii_whitespace() {
                let word = word.replace('\u{a0}', " ");
                if line.len() + 1 + word.len() > 78 && line.len() > 1 {
                    self.text.push_str(&line);
                    self.text.push('\n');
                    line = String::from("#  ");
                }
                line.push(' ');
                line.push_str(&word);
            }
            self.text.push_str(&line);
            self.text.push('\n');
        }
    }

    /// `key = value`, under a comment saying where it came from and why.
    pub fn key(&mut self, key: &str, value: impl Into<toml::Value>, note: &str) {
        self.comment(note);
        let _ = writeln!(self.text, "{key} = {}", render(value.into()));
    }

    /// `# key = value`: a setting proposed but not active.
    pub fn proposal(&mut self, key: &str, value: impl Into<toml::Value>) {
        let _ = writeln!(self.text, "# {key} = {}", render(value.into()));
    }

    /// A blank line.
    pub fn blank(&mut self) {
        self.text.push('\n');
    }

    /// The text written.
    pub fn into_string(self) -> String {
        self.text
    }
}

/// A value as TOML writes it (strings quoted and escaped).
fn render(value: toml::Value) -> String {
    match value {
        toml::Value::Array(items) => {
            let items: Vec<String> = items.into_iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A duration as pgha writes one (`"10s"`, `"500ms"`).
pub(super) fn dur(d: Duration) -> String {
    pgha_core::duration_serde::format(d)
}

/// pgpool's units for bare numbers.
pub(super) const SECONDS: Duration = Duration::from_secs(1);
pub(super) const MILLISECONDS: Duration = Duration::from_millis(1);

/// Whether a value is the empty string (pgpool's "not set").
pub(super) fn is_empty(value: &Value) -> bool {
    value.text().trim().is_empty()
}
