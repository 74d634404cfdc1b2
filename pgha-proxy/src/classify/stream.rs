//! The significant tokens of a query string, one statement at a time.

use super::lexer::{Lexer, Token, TokenKind};

/// The routing hint; matched ASCII case-insensitively inside a comment.
const HINT: &[u8] = b"pgha:primary";

/// A token with the parenthesis depth it sits at within its statement (a
/// `(` and its `)` sit at the outer depth).
#[derive(Debug, Clone, Copy)]
pub(super) struct Tok<'a> {
    pub token: Token<'a>,
    pub depth: u32,
}

impl Tok<'_> {
    pub fn is_word(&self, word: &str) -> bool {
        self.token.is_word(word)
    }

    pub fn is_punct(&self, byte: u8) -> bool {
        self.token.is_punct(byte)
    }

    /// The lowercased keyword, if this is a word short enough to be one.
    pub fn keyword<'b>(&self, buf: &'b mut [u8; 16]) -> Option<&'b [u8]> {
        if self.token.kind != TokenKind::Word {
            return None;
        }
        let text = self.token.text.as_bytes();
        let out = buf.get_mut(..text.len())?;
        for (o, c) in out.iter_mut().zip(text) {
            *o = c.to_ascii_lowercase();
        }
        Some(out)
    }
}

/// Splits a query string into statements on `;` the way psql does: not
/// inside parentheses (rule actions) nor inside a `BEGIN ATOMIC … END`
/// function body. Comments are skipped, and remembered if they carry the
/// hint.
#[derive(Debug)]
pub(super) struct Stream<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Tok<'a>>,
    depth: u32,
    /// Nesting of `BEGIN ATOMIC` bodies (and `CASE`s inside them).
    atomic: u32,
    prev_begin: bool,
    /// The current statement has ended (`;` or end of input).
    ended: bool,
    eof: bool,
    /// A comment carried the hint.
    pub hint: bool,
}

impl<'a> Stream<'a> {
    pub fn new(sql: &'a str) -> Self {
        Stream {
            lexer: Lexer::new(sql),
            peeked: None,
            depth: 0,
            atomic: 0,
            prev_begin: false,
            ended: false,
            eof: false,
            hint: false,
        }
    }

    /// The next significant token of the current statement, or `None` at
    /// its end.
    pub fn next(&mut self) -> Option<Tok<'a>> {
        if let Some(t) = self.peeked.take() {
            return Some(t);
        }
        self.pull()
    }

    /// The next token without consuming it.
    pub fn peek(&mut self) -> Option<Tok<'a>> {
        if self.peeked.is_none() {
            self.peeked = self.pull();
        }
        self.peeked
    }

    /// Consumes the rest of the current statement.
    pub fn skip_rest(&mut self) {
        while self.next().is_some() {}
    }

    /// Moves on to the next statement; `false` once the input is exhausted.
    pub fn next_statement(&mut self) -> bool {
        self.skip_rest();
        self.ended = false;
        self.depth = 0;
        self.atomic = 0;
        self.prev_begin = false;
        !self.eof
    }

    fn pull(&mut self) -> Option<Tok<'a>> {
        if self.ended {
            return None;
        }
        loop {
            let Some(token) = self.lexer.next() else {
                self.ended = true;
                self.eof = true;
                return None;
            };
            if token.is_punct(b')') {
                self.depth = self.depth.saturating_sub(1);
            }
            let depth = self.depth;
            match token.kind {
                TokenKind::LineComment | TokenKind::BlockComment => {
                    if !self.hint && contains_ignore_case(token.text.as_bytes(), HINT) {
                        self.hint = true;
                    }
                    continue;
                }
                TokenKind::Punct(b';') if depth == 0 && self.atomic == 0 => {
                    self.ended = true;
                    return None;
                }
                TokenKind::Punct(b'(') => self.depth += 1,
                TokenKind::Word => {
                    let opens = (self.prev_begin && token.text.eq_ignore_ascii_case("atomic"))
                        || (self.atomic > 0 && token.text.eq_ignore_ascii_case("case"));
                    if opens {
                        self.atomic += 1;
                    } else if self.atomic > 0 && token.text.eq_ignore_ascii_case("end") {
                        self.atomic -= 1;
                    }
                }
                _ => {}
            }
            self.prev_begin = token.is_word("begin");
            return Some(Tok { token, depth });
        }
    }
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
