//! Reading `pgpool.conf` as pgpool-II's own lexer does (`pool_config.l`).
//!
//! A line is `key [=] value`, then an optional `# comment`. A value is a
//! single-quoted string (`'…'`, one line; a backslash keeps the next
//! character inside it, and the text between the quotes is taken as it
//! stands, as pgpool does), an unquoted word (`on`, `stream`, `LOCAL0`,
//! letters, digits and `-._:/`), an integer (`10`, `-1`, `0x1f`), an
//! integer with a unit (`10s`, `500ms`, as pgpool 4.2+ reads time settings)
//! or a real (`1.5`). Keys are case-sensitive (`delegate_IP`). A key given twice
//! keeps its last value, as in pgpool.

use std::fmt;
use std::time::Duration;

/// A value as written, with the kind of token it was.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `'…'`: the text between the quotes.
    Quoted(String),
    /// An unquoted word (`on`, `stream`).
    Word(String),
    /// An integer, decimal or `0x` hexadecimal.
    Int(i64),
    /// A number with a decimal point or exponent, as written.
    Real(String),
}

impl Value {
    /// The value as text (a quoted string without its quotes).
    pub fn text(&self) -> String {
        match self {
            Value::Quoted(s) | Value::Word(s) | Value::Real(s) => s.clone(),
            Value::Int(n) => n.to_string(),
        }
    }

    /// As a boolean, the way pgpool reads one: a unique prefix of `true`,
    /// `false`, `yes`, `no`, `on`, `off`, or `1`/`0` (any case).
    pub fn as_bool(&self) -> Option<bool> {
        let text = self.text().to_ascii_lowercase();
        if text.is_empty() {
            return None;
        }
        let prefix_of = |word: &str, min: usize| text.len() >= min && word.starts_with(&text);
        if text == "1" || prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) {
            Some(true)
        } else if text == "0" || prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2)
        {
            Some(false)
        } else {
            None
        }
    }

    /// As an integer; a quoted integer counts too.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Quoted(s) | Value::Word(s) => parse_int(s.trim()),
            Value::Real(_) => None,
        }
    }

    /// As a duration: a bare integer counts in `unit` (the setting's own,
    /// e.g. seconds for health_check_period); a unit may be written, as
    /// pgpool 4.2+ allows: `ms`, `s`, `min`, `h`, `d`.
    pub fn as_duration(&self, unit: Duration) -> Option<Duration> {
        if let Some(n) = self.as_int() {
            return unit.checked_mul(u32::try_from(n).ok()?);
        }
        let text = self.text();
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit())?;
        let (number, suffix) = text.split_at(split);
        let number: u64 = number.parse().ok()?;
        let millis = match suffix.trim() {
            "ms" => 1,
            "s" => 1000,
            "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        Some(Duration::from_millis(number.checked_mul(millis)?))
    }

    /// As a number (pgpool's backend weights are reals).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Real(s) | Value::Quoted(s) | Value::Word(s) => s.trim().parse().ok(),
        }
    }
}

impl fmt::Display for Value {
    /// As pgpool.conf writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Quoted(s) => write!(f, "'{s}'"),
            Value::Word(s) | Value::Real(s) => f.write_str(s),
            Value::Int(n) => write!(f, "{n}"),
        }
    }
}

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The line it is on, 1-based.
    pub line: usize,
    /// The key, as written.
    pub key: String,
    /// Its value.
    pub value: Value,
}

/// A line that pgpool would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The line, 1-based.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// A parsed `pgpool.conf`: every setting in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgpoolConf {
    /// The settings in the order written (a key given twice appears twice).
    pub entries: Vec<Entry>,
}

impl PgpoolConf {
    /// Parses the text of a `pgpool.conf`; every bad line is reported.
    pub fn parse(text: &str) -> Result<PgpoolConf, Vec<LineError>> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match parse_line(line) {
                Ok(Some((key, value))) => entries.push(Entry {
                    line: i + 1,
                    key,
                    value,
                }),
                Ok(None) => {}
                Err(message) => errors.push(LineError {
                    line: i + 1,
                    message,
                }),
            }
        }
        if errors.is_empty() {
            Ok(PgpoolConf { entries })
        } else {
            Err(errors)
        }
    }

    /// The entry that counts for `key`: the last one, as in pgpool.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }
}

fn is_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_key_char(c: char) -> bool {
    is_letter(c) || c.is_ascii_digit()
}

/// One line: `Ok(None)` for a blank or comment line.
fn parse_line(line: &str) -> Result<Option<(String, Value)>, String> {
    let rest = line.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        return Ok(None);
    }
    let first = rest.chars().next().unwrap_or(' ');
    if !is_letter(first) {
        return Err(format!(
            "expected a parameter name, found {:?}",
            first_word(rest)
        ));
    }
    let end = rest.find(|c| !is_key_char(c)).unwrap_or(rest.len());
    let (key, rest) = rest.split_at(end);
    let mut rest = rest.trim_start();
    if let Some(after) = rest.strip_prefix('=') {
        rest = after.trim_start();
    }
    if rest.is_empty() || rest.starts_with('#') {
        return Err(format!("{key} has no value (write {key} = 'value')"));
    }
    let (value, rest) = parse_value(key, rest)?;
    let rest = rest.trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return Err(format!(
            "{key}: unexpected {:?} after the value {value} (quote values that contain spaces)",
            first_word(rest)
        ));
    }
    Ok(Some((key.to_owned(), value)))
}

/// A value token at the start of `text`, and what follows it.
fn parse_value<'t>(key: &str, text: &'t str) -> Result<(Value, &'t str), String> {
    if let Some(body) = text.strip_prefix('\'') {
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                // A backslash keeps the next character, a quote included.
                '\\' if chars.next().is_none() => break,
                '\'' => return Ok((Value::Quoted(body[..i].to_owned()), &body[i + 1..])),
                _ => {}
            }
        }
        return Err(format!(
            "{key}: the quoted value has no closing quote on this line"
        ));
    }
    let end = text
        .find(|c: char| !(is_key_char(c) || "-+._:/".contains(c)))
        .unwrap_or(text.len());
    let (token, rest) = text.split_at(end);
    if token.is_empty() {
        return Err(format!(
            "{key}: {:?} is not a value (quote text: {key} = '…')",
            first_word(text)
        ));
    }
    let first = token.chars().next().unwrap_or(' ');
    if is_letter(first) {
        return Ok((Value::Word(token.to_owned()), rest));
    }
    if let Some(n) = parse_int(token) {
        return Ok((Value::Int(n), rest));
    }
    if is_int_with_unit(token) {
        return Ok((Value::Word(token.to_owned()), rest));
    }
    if is_real(token) {
        return Ok((Value::Real(token.to_owned()), rest));
    }
    Err(format!(
        "{key}: {token:?} is neither a number nor a word (quote text: {key} = '{token}')"
    ))
}

/// `[+-]digits` or `[+-]0xhex`.
fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = match digits.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            i64::from_str_radix(hex, 16).ok()?
        }
        Some(_) => return None,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        None => return None,
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// `10s`, `500ms`: digits, then letters.
fn is_int_with_unit(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && text.len() > digits && text.bytes().skip(digits).all(|b| b.is_ascii_alphabetic())
}

/// `[+-]digits*.digits*[eE[+-]digits]`, as pgpool's REAL.
fn is_real(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let Some((whole, fraction)) = mantissa.split_once('.') else {
        return false;
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty()) && exponent_ok
}

/// The first whitespace-separated word of `text`, for messages.
fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or(text)
}

#[cfg(test)]
#[path = "pgpool_conf_tests.rs"]
mod tests;
