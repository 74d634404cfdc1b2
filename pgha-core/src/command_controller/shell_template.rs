//! Shell command lines with placeholders, whatever their spelling (`%d`
//! for failover commands, `$_IP_$` for address commands): parsed once,
//! checked so that every placeholder stands where the shell reads a bare
//! word, and rendered with every value single-quoted.

use crate::Error;

/// A shell command line with placeholders of some syntax `P`, checked when
/// it is parsed and rendered into a `sh -c` script (run it with
/// [`run_command`](crate::run_command)).
///
/// The syntax is a function given to [`parse`](Self::parse): at each point
/// of the template it says whether a placeholder (or an escape such as
/// `%%`) starts there. Every value is inserted as one single-quoted shell
/// word, so no value can ever add shell syntax; and because that only
/// works where the shell would read a bare word, `parse` rejects
/// placeholders inside `'…'`, `"…"` or backticks, right after a backslash,
/// and in templates with here-documents (`<<`).
///
/// [`CommandTemplate`](crate::CommandTemplate) is pgpool's `%x` syntax on
/// top of it; pgha-vip's address commands use `$_IP_$`:
///
/// ```
/// use pgha_core::{Scan, ShellTemplate};
///
/// // `$_IP_$` is the only placeholder of this syntax.
/// let syntax = |rest: &str, _at: usize| match rest.strip_prefix("$_IP_$") {
///     Some(_) => Scan::Placeholder((), "$_IP_$".len()),
///     None => Scan::Text,
/// };
/// let up = ShellTemplate::parse("if_up_cmd", "ip addr add $_IP_$/24 dev eth0", syntax)?;
/// assert_eq!(up.render(|()| "192.0.2.50".to_string()), "ip addr add '192.0.2.50'/24 dev eth0");
/// assert!(ShellTemplate::parse("if_up_cmd", "echo \"$_IP_$\"", syntax).is_err());
/// # Ok::<(), pgha_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellTemplate<P> {
    source: String,
    segments: Vec<Segment<P>>,
}

/// What a placeholder syntax finds at one point of a template (the rest of
/// the template from there, and its byte offset, are what it is shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan<P> {
    /// No placeholder starts here: the character is ordinary shell text.
    Text,
    /// An escape for a literal character (`%%` → `%`) this many bytes long.
    Literal(char, usize),
    /// A placeholder this many bytes long.
    Placeholder(P, usize),
    /// Something that looks like a placeholder but is none: the error
    /// message (the setting and the template are added to it).
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment<P> {
    Text(String),
    Value(P),
}

/// Where the shell would be at a point of the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    Bare,
    Single,
    Double,
    Backtick,
    Comment,
}

impl<P: Copy> ShellTemplate<P> {
    /// Parses `template`, the value of the setting `setting` (named in
    /// errors), with the placeholder syntax `scan`. Fails with
    /// [`Error::Config`] on what `scan` calls invalid, or a placeholder
    /// where quoting cannot protect it.
    pub fn parse(
        setting: &str,
        template: &str,
        scan: impl Fn(&str, usize) -> Scan<P>,
    ) -> Result<Self, Error> {
        let invalid = |what: String| Error::Config {
            what: format!("{setting}: {what} in {template:?}"),
        };
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut quoting = Quoting::Bare;
        let mut escaped = false;
        let mut previous = ' ';
        let mut here_document = false;
        let mut at = 0;
        while let Some(c) = template[at..].chars().next() {
            match scan(&template[at..], at) {
                Scan::Text => {}
                Scan::Invalid(what) => return Err(invalid(what)),
                Scan::Literal(literal, len) => {
                    text.push(literal);
                    escaped = false;
                    previous = literal;
                    at += len.max(1);
                    continue;
                }
                Scan::Placeholder(placeholder, len) => {
                    let spelled = template.get(at..at + len).unwrap_or(&template[at..]);
                    if escaped || !matches!(quoting, Quoting::Bare | Quoting::Comment) {
                        return Err(invalid(format!(
                            "{spelled} at byte {at} is quoted or escaped; write placeholders \
                             bare, pgha quotes every value"
                        )));
                    }
                    if !text.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut text)));
                    }
                    segments.push(Segment::Value(placeholder));
                    previous = spelled.chars().last().unwrap_or(previous);
                    at += len.max(1);
                    continue;
                }
            }
            text.push(c);
            if escaped {
                escaped = false;
            } else {
                quoting = match (quoting, c) {
                    (Quoting::Comment, '\n') => Quoting::Bare,
                    (Quoting::Comment, _) => Quoting::Comment,
                    (Quoting::Single, '\'') => Quoting::Bare,
                    (Quoting::Single, _) => Quoting::Single,
                    (_, '\\') => {
                        escaped = true;
                        quoting
                    }
                    (Quoting::Bare, '\'') => Quoting::Single,
                    (Quoting::Bare, '"') | (Quoting::Backtick, '"') => Quoting::Double,
                    (Quoting::Double, '"') => Quoting::Bare,
                    (Quoting::Bare, '`') | (Quoting::Double, '`') => Quoting::Backtick,
                    (Quoting::Backtick, '`') => Quoting::Bare,
                    (Quoting::Bare, '#') if previous.is_whitespace() => Quoting::Comment,
                    (Quoting::Bare, '<') if previous == '<' => {
                        here_document = true;
                        quoting
                    }
                    (q, _) => q,
                };
            }
            previous = c;
            at += c.len_utf8();
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        if here_document && segments.iter().any(|s| matches!(s, Segment::Value(_))) {
            // A here-document body expands `$(…)` whatever the quotes.
            return Err(invalid(
                "placeholders with a here-document (<<)".to_string(),
            ));
        }
        Ok(ShellTemplate {
            source: template.to_string(),
            segments,
        })
    }

    /// The command line with every placeholder replaced by its value,
    /// [quoted](shell_quote): the script `sh -c` runs.
    pub fn render(&self, value: impl Fn(P) -> String) -> String {
        let mut line = String::with_capacity(self.source.len() + 64);
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => line.push_str(text),
                Segment::Value(p) => line.push_str(&shell_quote(&value(*p))),
            }
        }
        line
    }

    /// The placeholders the template uses, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = P> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Value(p) => Some(*p),
            Segment::Text(_) => None,
        })
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// `value` as one single-quoted shell word: `it's` → `'it'\''s'`.
///
/// ```
/// assert_eq!(pgha_core::shell_quote("it's"), r"'it'\''s'");
/// ```
pub fn shell_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' {
            quoted.push_str(r"'\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}
