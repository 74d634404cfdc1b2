//! Classification of one statement from its significant tokens.

use super::stream::{Stream, Tok};
use super::{ClassifyConfig, Reason};
use crate::classify::lexer::TokenKind;

/// What one statement needs.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct StatementClass {
    /// Why it must go to the primary; `None` when any server will do.
    pub primary: Option<Reason>,
    pub starts: bool,
    pub ends: bool,
    pub read_only: bool,
}

impl StatementClass {
    fn any() -> Self {
        StatementClass::default()
    }

    fn primary(reason: Reason) -> Self {
        StatementClass {
            primary: Some(reason),
            ..StatementClass::default()
        }
    }

    fn maybe(reason: Option<Reason>) -> Self {
        StatementClass {
            primary: reason,
            ..StatementClass::default()
        }
    }
}

/// Classifies the statement that starts with `first`; `nested` is set for
/// the statement under `EXPLAIN ANALYZE` (which cannot be another EXPLAIN:
/// that also bounds the recursion).
pub(super) fn statement<'a>(
    first: Tok<'a>,
    s: &mut Stream<'a>,
    config: &ClassifyConfig,
    nested: bool,
) -> StatementClass {
    if first.is_punct(b'(') {
        // `(SELECT …) UNION (SELECT …)`
        return StatementClass::maybe(scan_read(first, s, config, false));
    }
    let mut buf = [0u8; 16];
    let Some(kw) = first.keyword(&mut buf) else {
        return StatementClass::primary(Reason::Unknown);
    };
    match kw {
        b"select" | b"values" | b"table" | b"with" => {
            StatementClass::maybe(scan_read(first, s, config, false))
        }
        b"show" | b"fetch" | b"move" | b"close" | b"savepoint" | b"release" => {
            StatementClass::any()
        }
        b"explain" if !nested => explain(s, config),
        b"copy" => StatementClass::maybe(scan_read(first, s, config, true)),
        b"declare" => declare(s, config),
        b"begin" => begin(s, false),
        b"start" => begin(s, true),
        b"commit" | b"end" | b"abort" | b"rollback" => end(s),
        b"prepare" => {
            if s.peek().is_some_and(|t| t.is_word("transaction")) {
                StatementClass {
                    ends: true,
                    ..StatementClass::primary(Reason::Write)
                }
            } else {
                StatementClass::primary(Reason::Session)
            }
        }
        b"set" => set(s),
        b"reset" => StatementClass::primary(Reason::Set),
        b"discard" | b"listen" | b"notify" | b"unlisten" | b"load" | b"deallocate" => {
            StatementClass::primary(Reason::Session)
        }
        b"lock" => StatementClass::primary(Reason::Lock),
        b"create" => create(s),
        b"insert" | b"update" | b"delete" | b"merge" | b"alter" | b"drop" | b"truncate"
        | b"grant" | b"revoke" | b"vacuum" | b"analyze" | b"analyse" | b"cluster" | b"reindex"
        | b"comment" | b"security" | b"refresh" | b"import" | b"reassign" | b"call" | b"do"
        | b"checkpoint" => StatementClass::primary(Reason::Write),
        _ => StatementClass::primary(Reason::Unknown),
    }
}

/// Scans a reading statement (SELECT, VALUES, TABLE, WITH, a cursor's query,
/// COPY) for anything that needs the primary. With `copy`, a `FROM` outside
/// parentheses is `COPY … FROM`. `first` is the token before the rest.
fn scan_read<'a>(
    first: Tok<'a>,
    s: &mut Stream<'a>,
    config: &ClassifyConfig,
    copy: bool,
) -> Option<Reason> {
    let mut prev = Some(first);
    let mut prev_kw = [0u8; 16];
    let mut prev_len = first.keyword(&mut prev_kw).map_or(0, <[u8]>::len);
    // Tokens left in which a `SET` completes `UPDATE [ONLY] a.b.c [*] [AS] x`.
    let mut update_window = 0u8;
    // The previous token was INSERT, MERGE or DELETE where a statement can
    // start (a data-modifying CTE or the main statement after WITH).
    let mut dml_prev = false;
    while let Some(t) = s.next() {
        let prev_word: &[u8] = prev_kw.get(..prev_len).unwrap_or(&[]);
        let mut buf = [0u8; 16];
        let kw = t.keyword(&mut buf);
        let dml = matches!(kw, Some(b"insert" | b"merge" | b"delete" | b"update"))
            && can_start_statement(prev, prev_word);
        match kw {
            Some(b"update" | b"share" | b"no" | b"key") if prev_word == b"for" => {
                return Some(Reason::LockingRead);
            }
            Some(b"update") if dml => update_window = 10,
            Some(b"set") if update_window > 0 => return Some(Reason::Write),
            Some(b"into") if dml_prev && matches!(prev_word, b"insert" | b"merge") => {
                return Some(Reason::Write);
            }
            Some(b"into") => return Some(Reason::SelectInto),
            Some(b"from") if (dml_prev && prev_word == b"delete") || (copy && t.depth == 0) => {
                return Some(Reason::Write);
            }
            _ => {}
        }
        dml_prev = dml;
        match t.token.kind {
            TokenKind::Punct(b'(') => {
                if prev.is_some_and(|p| is_write_function(p, config)) {
                    return Some(Reason::WriteFunction);
                }
                update_window = 0;
            }
            TokenKind::Punct(b'.' | b'*') => {}
            TokenKind::Punct(_) => update_window = 0,
            _ => {}
        }
        update_window = update_window.saturating_sub(1);
        prev = Some(t);
        match kw {
            Some(kw) => {
                prev_kw[..kw.len()].copy_from_slice(kw);
                prev_len = kw.len();
            }
            None => prev_len = 0,
        }
    }
    None
}

/// Whether a statement keyword after `prev` can start a statement rather
/// than name a column (`SELECT delete`, `t.update`, `AS insert`, `, merge`).
fn can_start_statement(prev: Option<Tok<'_>>, prev_word: &[u8]) -> bool {
    match prev {
        None => true,
        Some(p) if p.is_punct(b'.') || p.is_punct(b',') => false,
        Some(_) => !matches!(prev_word, b"select" | b"distinct" | b"all" | b"as"),
    }
}

fn is_write_function(t: Tok<'_>, config: &ClassifyConfig) -> bool {
    let text = t.token.text;
    match t.token.kind {
        TokenKind::Word => config
            .write_functions
            .iter()
            .any(|f| f.eq_ignore_ascii_case(text)),
        // A quoted name is case-sensitive; `""` inside is rare enough to
        // leave unmatched.
        TokenKind::QuotedIdent => text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .is_some_and(|name| config.write_functions.iter().any(|f| f == name)),
        _ => false,
    }
}

/// `EXPLAIN` runs its statement only with `ANALYZE`.
fn explain(s: &mut Stream<'_>, config: &ClassifyConfig) -> StatementClass {
    let mut analyze = false;
    let Some(mut t) = s.next() else {
        return StatementClass::any();
    };
    if t.is_punct(b'(') {
        // EXPLAIN (ANALYZE [bool], VERBOSE, FORMAT JSON, …) statement
        let mut option_start = true;
        let mut after_analyze = false;
        loop {
            let Some(o) = s.next() else {
                return StatementClass::any();
            };
            if o.is_punct(b')') && o.depth == t.depth {
                break;
            }
            if after_analyze && is_false(o) {
                analyze = false;
            }
            after_analyze = false;
            if option_start && (o.is_word("analyze") || o.is_word("analyse")) {
                analyze = true;
                after_analyze = true;
            }
            option_start = o.is_punct(b',');
        }
        let Some(next) = s.next() else {
            return StatementClass::any();
        };
        t = next;
    } else {
        // EXPLAIN [ANALYZE] [VERBOSE] statement
        for option in ["analyze", "verbose"] {
            let matched = t.is_word(option) || (option == "analyze" && t.is_word("analyse"));
            if matched {
                analyze |= option == "analyze";
                let Some(next) = s.next() else {
                    return StatementClass::any();
                };
                t = next;
            }
        }
    }
    if !analyze {
        return StatementClass::any();
    }
    let inner = statement(t, s, config, true);
    StatementClass::maybe(inner.primary)
}

fn is_false(t: Tok<'_>) -> bool {
    let text = t.token.text;
    let text = match t.token.kind {
        TokenKind::String => text.trim_matches('\''),
        _ => text,
    };
    ["false", "off", "0"]
        .iter()
        .any(|f| text.eq_ignore_ascii_case(f))
}

/// `DECLARE name … [WITH HOLD] … FOR query`: a held cursor outlives the
/// transaction, so it is session state.
fn declare(s: &mut Stream<'_>, config: &ClassifyConfig) -> StatementClass {
    let mut hold = false;
    let mut prev_with = false;
    while let Some(t) = s.next() {
        if t.depth == 0 && t.is_word("for") {
            let reason = scan_read(t, s, config, false);
            return StatementClass::maybe(reason.or(hold.then_some(Reason::Session)));
        }
        hold |= prev_with && t.is_word("hold");
        prev_with = t.is_word("with");
    }
    StatementClass::primary(Reason::Unknown)
}

/// Transaction modes: `(read_only, read_write, serializable)`.
fn transaction_modes(s: &mut Stream<'_>) -> (bool, bool, bool) {
    let (mut ro, mut rw, mut serializable) = (false, false, false);
    let mut prev_read = false;
    while let Some(t) = s.next() {
        ro |= prev_read && t.is_word("only");
        rw |= prev_read && t.is_word("write");
        serializable |= t.is_word("serializable");
        prev_read = t.is_word("read");
    }
    (ro, rw, serializable)
}

/// `BEGIN [WORK | TRANSACTION] [modes]`, `START TRANSACTION [modes]`.
fn begin(s: &mut Stream<'_>, start: bool) -> StatementClass {
    match s.peek() {
        Some(t) if t.is_word("transaction") || (!start && t.is_word("work")) => {
            s.next();
        }
        _ if start => return StatementClass::primary(Reason::Unknown),
        _ => {}
    }
    let (ro, rw, serializable) = transaction_modes(s);
    let read_only = ro && !rw;
    let primary = if serializable {
        // A hot standby refuses serializable transactions.
        Some(Reason::Serializable)
    } else if read_only {
        None
    } else {
        Some(Reason::TransactionStart)
    };
    StatementClass {
        primary,
        starts: true,
        ends: false,
        read_only,
    }
}

/// `COMMIT`, `END`, `ABORT`, `ROLLBACK` [… AND [NO] CHAIN], `ROLLBACK TO
/// SAVEPOINT`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
fn end(s: &mut Stream<'_>) -> StatementClass {
    let mut chain = false;
    let mut prev_and = false;
    while let Some(t) = s.next() {
        if t.is_word("prepared") {
            return StatementClass::primary(Reason::Write);
        }
        if t.is_word("to") {
            return StatementClass::any();
        }
        chain |= prev_and && t.is_word("chain");
        prev_and = t.is_word("and");
    }
    StatementClass {
        starts: chain,
        ends: true,
        ..StatementClass::any()
    }
}

/// `SET …`; `SET TRANSACTION … READ ONLY` also marks the transaction.
fn set(s: &mut Stream<'_>) -> StatementClass {
    let mut class = StatementClass::primary(Reason::Set);
    if s.next().is_some_and(|t| t.is_word("transaction")) {
        let (ro, rw, _) = transaction_modes(s);
        class.read_only = ro && !rw;
    }
    class
}

/// `CREATE [OR REPLACE] [GLOBAL | LOCAL] {TEMP | TEMPORARY} …`.
fn create(s: &mut Stream<'_>) -> StatementClass {
    while let Some(t) = s.next() {
        if t.is_word("temp") || t.is_word("temporary") {
            return StatementClass::primary(Reason::TempTable);
        }
        if !(t.is_word("or") || t.is_word("replace") || t.is_word("global") || t.is_word("local")) {
            break;
        }
    }
    StatementClass::primary(Reason::Write)
}
