//! A result set in memory and its encoding: the one place that knows how
//! admin values become protocol text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use crate::messages::{self, Field};

/// A column's type, as announced in the `RowDescription`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `text` (OID 25).
    Text,
    /// `int8` (OID 20).
    Int8,
    /// `bool` (OID 16).
    Bool,
}

impl Kind {
    fn oid(self) -> u32 {
        match self {
            Kind::Text => 25,
            Kind::Int8 => 20,
            Kind::Bool => 16,
        }
    }
}

/// A column: name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Column {
    name: &'static str,
    kind: Kind,
}

/// A `text` column.
pub(super) const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Text,
    }
}

/// An `int8` column.
pub(super) const fn int8(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Int8,
    }
}

/// A `bool` column.
pub(super) const fn boolean(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Bool,
    }
}

/// One value of a row, `Null` for "not known".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    /// SQL NULL.
    Null,
    /// Text as is.
    Text(String),
    /// A number.
    Int(i64),
    /// `t` or `f`.
    Bool(bool),
}

impl Value {
    /// Text.
    pub(super) fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }

    /// Text, or NULL.
    pub(super) fn opt_text(s: Option<impl Into<String>>) -> Value {
        s.map_or(Value::Null, Value::text)
    }

    /// An unsigned count; int8 is signed, so beyond `i64::MAX` it saturates
    /// (no counter of a running proxy gets there).
    pub(super) fn int(n: impl TryInto<i64>) -> Value {
        Value::Int(n.try_into().unwrap_or(i64::MAX))
    }

    /// A number, or NULL.
    pub(super) fn opt_int(n: Option<impl TryInto<i64>>) -> Value {
        n.map_or(Value::Null, Value::int)
    }

    /// A duration in whole microseconds (PgBouncer's unit for times).
    pub(super) fn micros(d: Duration) -> Value {
        Value::int(d.as_micros())
    }

    /// A point in time as `YYYY-MM-DD HH:MM:SS UTC` (which PostgreSQL's
    /// `timestamptz` input accepts), NULL outside years 1970 to 9999.
    pub(super) fn time(t: SystemTime) -> Value {
        Value::opt_text(utc_text(t).map(|s| s + " UTC"))
    }

    /// The protocol's text form; `None` for NULL.
    fn encode(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Text(s) => Some(s.clone()),
            Value::Int(n) => Some(n.to_string()),
            Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_owned()),
        }
    }
}

/// Rows under fixed columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Table {
    columns: &'static [Column],
    rows: Vec<Vec<Value>>,
}

impl Table {
    /// An empty table with these columns.
    pub(super) fn new(columns: &'static [Column]) -> Self {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Appends a row; it holds one value per column (a mismatch is a bug
    /// of the table's builder, which every `SHOW` test would catch).
    pub(super) fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len(), "one value per column");
        self.rows.push(row);
    }

    /// `RowDescription`, one `DataRow` per row, `CommandComplete` `tag`.
    pub(super) fn write(&self, tag: &str, out: &mut BytesMut) {
        let fields: Vec<Field<'_>> = self
            .columns
            .iter()
            .map(|c| Field {
                name: c.name,
                type_oid: c.kind.oid(),
            })
            .collect();
        messages::row_description(out, &fields);
        for row in &self.rows {
            let texts: Vec<Option<String>> = row.iter().map(Value::encode).collect();
            messages::data_row(out, texts.iter().map(|t| t.as_deref().map(str::as_bytes)));
        }
        messages::command_complete(out, tag);
    }
}

/// The last second of year 9999: beyond it the text would not be a
/// timestamp PostgreSQL reads, and the year loop below stays short.
const MAX_UNIX_SECONDS: u64 = 253_402_300_799;

/// `YYYY-MM-DD HH:MM:SS` in UTC, `None` before 1970 or after 9999.
pub(super) fn utc_text(t: SystemTime) -> Option<String> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    if secs > MAX_UNIX_SECONDS {
        return None;
    }
    let (mut days, in_day) = (secs / 86_400, secs % 86_400);
    let mut year = 1970u64;
    loop {
        let length = if is_leap(year) { 366 } else { 365 };
        if days < length {
            break;
        }
        days -= length;
        year += 1;
    }
    let february = if is_leap(year) { 29 } else { 28 };
    let lengths = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 1;
    for length in lengths {
        if days < length {
            break;
        }
        days -= length;
        month += 1;
    }
    Some(format!(
        "{year:04}-{month:02}-{:02} {:02}:{:02}:{:02}",
        days + 1,
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    ))
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}
