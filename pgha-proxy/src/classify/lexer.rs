//! A PostgreSQL lexer just precise enough to classify statements.
//!
//! It follows the token boundaries of PostgreSQL's `scan.l` (with
//! `standard_conforming_strings = on`, the default since 9.1): keywords
//! hidden in strings, comments, dollar quotes and quoted identifiers never
//! surface as [`TokenKind::Word`]. It never allocates, never fails and never
//! panics: an unterminated string, comment or quoted identifier runs to the
//! end of the input, as the server would report it (as an error) there.
//!
//! Tokens borrow their text from the input; every token boundary falls on an
//! ASCII byte or the end of the input, so slicing never splits a character.
//!
//! ```
//! use pgha_proxy::classify::lexer::{Lexer, TokenKind};
//!
//! let kinds: Vec<_> = Lexer::new("SELECT 'x;y' -- z\n;").map(|t| t.kind).collect();
//! assert_eq!(
//!     kinds,
//!     [TokenKind::Word, TokenKind::String, TokenKind::LineComment, TokenKind::Punct(b';')]
//! );
//! ```

/// What a [`Token`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A keyword or an unquoted identifier (compare case-insensitively, see
    /// [`Token::is_word`]).
    Word,
    /// `"an identifier"` or `U&"an identifier"`, quotes included.
    QuotedIdent,
    /// A string constant: `'…'`, `E'…'`, `U&'…'`, `B'…'`, `X'…'`, `N'…'`,
    /// or a dollar-quoted `$tag$…$tag$`, quotes included.
    String,
    /// A numeric constant.
    Number,
    /// A positional parameter such as `$1`.
    Param,
    /// One byte of punctuation or operator: `;`, `(`, `)`, `,`, `.`, `+`…
    /// (multi-byte operators come as one token per byte). Also any other
    /// ASCII control byte the server would reject.
    Punct(u8),
    /// `-- …` up to (not including) the end of the line.
    LineComment,
    /// `/* … */`, nested comments included.
    BlockComment,
}

/// One token: its kind and the exact text it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What the token is.
    pub kind: TokenKind,
    /// The input it covers, quotes and comment markers included.
    pub text: &'a str,
}

impl Token<'_> {
    /// Whether this is the keyword (or unquoted identifier) `word`, compared
    /// ASCII case-insensitively as PostgreSQL folds unquoted names.
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(word)
    }

    /// Whether this is the punctuation byte `byte`.
    pub fn is_punct(&self, byte: u8) -> bool {
        self.kind == TokenKind::Punct(byte)
    }

    /// Whether this is a comment of either kind.
    pub fn is_comment(&self) -> bool {
        matches!(self.kind, TokenKind::LineComment | TokenKind::BlockComment)
    }
}

/// An iterator over the [`Token`]s of one query string; whitespace is
/// skipped, comments are yielded.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `src`.
    pub fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.bytes().get(i).copied()
    }

    /// The token from `start` to the current position.
    fn token(&self, kind: TokenKind, start: usize) -> Token<'a> {
        // Boundaries are ASCII bytes or the end, so `get` always succeeds;
        // the fallback only keeps this total.
        let text = self.src.get(start..self.pos).unwrap_or("");
        Token { kind, text }
    }

    /// Skips a quoted run starting at the opening `quote` at `self.pos`. A
    /// doubled quote stands for one; with `backslash`, `\` escapes the next
    /// byte (`E'…'`).
    fn quoted(&mut self, quote: u8, backslash: bool) {
        let b = self.bytes();
        let mut i = self.pos + 1;
        while i < b.len() {
            let c = b[i];
            if backslash && c == b'\\' {
                i += 2;
            } else if c == quote {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    self.pos = i + 1;
                    return;
                }
            } else {
                i += 1;
            }
        }
        self.pos = b.len();
    }

    /// Skips a block comment starting at `self.pos`; they nest.
    fn block_comment(&mut self) {
        let b = self.bytes();
        let mut depth = 0usize;
        let mut i = self.pos;
        while i < b.len() {
            if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                depth += 1;
                i += 2;
            } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    self.pos = i;
                    return;
                }
            } else {
                i += 1;
            }
        }
        self.pos = b.len();
    }

    /// At a `$` that is not a parameter: a dollar-quoted string if a valid
    /// `$tag$` opens here, else `false` (the `$` is then punctuation, as in
    /// the server's `dolqfailed` rule).
    fn dollar_quoted(&mut self) -> bool {
        let b = self.bytes();
        let start = self.pos;
        let mut i = start + 1;
        if b.get(i).is_some_and(|&c| is_ident_start(c)) {
            i += 1;
            while b
                .get(i)
                .is_some_and(|&c| is_ident_start(c) || c.is_ascii_digit())
            {
                i += 1;
            }
        }
        if b.get(i) != Some(&b'$') {
            return false;
        }
        let tag_end = i + 1;
        let tag = &b[start..tag_end];
        self.pos = find(&b[tag_end..], tag).map_or(b.len(), |at| tag_end + at + tag.len());
        true
    }

    fn number(&mut self) {
        let b = self.bytes();
        let mut i = self.pos;
        let digits = |i: &mut usize, ok: fn(u8) -> bool| {
            while b.get(*i).is_some_and(|&c| ok(c) || c == b'_') {
                *i += 1;
            }
        };
        if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')) {
            i += 2;
            digits(&mut i, |c| c.is_ascii_hexdigit());
            self.pos = i;
            return;
        }
        digits(&mut i, |c| c.is_ascii_digit());
        // `1..2` is not a number followed by `.2`; keep `..` out.
        if b.get(i) == Some(&b'.') && b.get(i + 1) != Some(&b'.') {
            i += 1;
            digits(&mut i, |c| c.is_ascii_digit());
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if b.get(j).is_some_and(u8::is_ascii_digit) {
                i = j;
                digits(&mut i, |c| c.is_ascii_digit());
            }
        }
        self.pos = i;
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let b = self.bytes();
        while self.pos < b.len() && is_space(b[self.pos]) {
            self.pos += 1;
        }
        let start = self.pos;
        let c = *b.get(start)?;
        let next = self.at(start + 1);
        let kind = match c {
            b'-' if next == Some(b'-') => {
                self.pos = b[start..]
                    .iter()
                    .position(|&c| c == b'\n' || c == b'\r')
                    .map_or(b.len(), |at| start + at);
                TokenKind::LineComment
            }
            b'/' if next == Some(b'*') => {
                self.block_comment();
                TokenKind::BlockComment
            }
            b'\'' => {
                self.quoted(b'\'', false);
                TokenKind::String
            }
            b'"' => {
                self.quoted(b'"', false);
                TokenKind::QuotedIdent
            }
            b'e' | b'E' if next == Some(b'\'') => {
                self.pos += 1;
                self.quoted(b'\'', true);
                TokenKind::String
            }
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if next == Some(b'\'') => {
                self.pos += 1;
                self.quoted(b'\'', false);
                TokenKind::String
            }
            b'u' | b'U'
                if next == Some(b'&') && matches!(self.at(start + 2), Some(b'\'' | b'"')) =>
            {
                self.pos += 2;
                let quote = b[self.pos];
                self.quoted(quote, false);
                if quote == b'"' {
                    TokenKind::QuotedIdent
                } else {
                    TokenKind::String
                }
            }
            b'$' if next.is_some_and(|c| c.is_ascii_digit()) => {
                self.pos += 1;
                while self.at(self.pos).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                TokenKind::Param
            }
            b'$' if self.dollar_quoted() => TokenKind::String,
            b'0'..=b'9' => {
                self.number();
                TokenKind::Number
            }
            b'.' if next.is_some_and(|c| c.is_ascii_digit()) => {
                self.number();
                TokenKind::Number
            }
            c if is_ident_start(c) => {
                self.pos += 1;
                while self.at(self.pos).is_some_and(is_ident_cont) {
                    self.pos += 1;
                }
                TokenKind::Word
            }
            c => {
                // ASCII here: every byte >= 0x80 starts an identifier.
                self.pos += 1;
                TokenKind::Punct(c)
            }
        };
        Some(self.token(kind, start))
    }
}

/// Whitespace as the server's lexer sees it (`\v` since PostgreSQL 16).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// `ident_start`: letters, `_`, and every byte of a non-ASCII character.
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// `ident_cont`: also digits and `$`.
fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// The first position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(at) = hay.get(from..)?.iter().position(|&c| c == first) {
        let i = from + at;
        if hay.get(i + 1..i + 1 + rest.len()) == Some(rest) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}
