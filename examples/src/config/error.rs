//! What is wrong with a configuration, and where: `file:line:column: what`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One mistake, with its place when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file it is in; `None` for a command-line flag.
    pub file: Option<PathBuf>,
    /// The line, 1-based.
    pub line: Option<usize>,
    /// The column, 1-based, counted in characters.
    pub column: Option<usize>,
    /// What is wrong, in words.
    pub message: String,
}

impl Problem {
    /// A mistake in `file` as a whole (no line to point at).
    pub fn in_file(file: &Path, message: impl Into<String>) -> Problem {
        Problem {
            file: Some(file.to_path_buf()),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// A mistake in a command-line flag.
    pub fn flag(message: impl Into<String>) -> Problem {
        Problem {
            file: None,
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
            if let Some(line) = self.line {
                write!(f, "{line}:")?;
                if let Some(column) = self.column {
                    write!(f, "{column}:")?;
                }
            }
            f.write_str(" ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every mistake found, one per line when shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The mistakes, in the order they were found (never empty).
    pub problems: Vec<Problem>,
}

impl From<Problem> for ConfigError {
    fn from(problem: Problem) -> Self {
        ConfigError {
            problems: vec![problem],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A configuration file's name and text, to turn byte spans into lines.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The file's path as the operator gave it.
    pub path: &'a Path,
    /// Its text.
    pub text: &'a str,
}

impl Source<'_> {
    /// A problem at the start of `span` (a byte range of the text).
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Problem {
        let start = span.start.min(self.text.len());
        let bytes = &self.text.as_bytes()[..start];
        let line = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // A span from the parser starts on a character boundary; should
        // one ever not, the line alone is still right.
        let column = self
            .text
            .get(line_start..start)
            .map(|prefix| prefix.chars().count() + 1);
        Problem {
            file: Some(self.path.to_path_buf()),
            line: Some(line),
            column,
            message: message.into(),
        }
    }

    /// The toml crate's error, placed and reworded onto one line.
    pub fn toml_error(&self, error: &toml::de::Error) -> Problem {
        // Its messages can span lines (a syntax error lists what was
        // expected); one line per problem keeps the output greppable.
        let message = error
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        match error.span() {
            Some(span) => self.at(span, message),
            None => Problem::in_file(self.path, message),
        }
    }
}
