//! Read/write classification: the case table in `testdata/classify.txt`,
//! plus properties over garbage input (the classifier reads whatever a
//! client sends, so it must never panic).
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pgha_proxy::classify::lexer::Lexer;
use pgha_proxy::classify::{classify, Classification, ClassifyConfig, Reason, Route};
use pgha_proxy::prepared::{batch_route, batch_route_cached, ClientStatements};
use pgha_proxy::route_cache::RouteCache;

const CASES: &str = include_str!("../testdata/classify.txt");
const CASES_PATH: &str = "pgha-proxy/testdata/classify.txt";

/// One line of the table.
struct Case {
    line: usize,
    primary: bool,
    reason: Option<String>,
    begin: bool,
    end: bool,
    ro: bool,
    statements: Option<usize>,
    sql: String,
}

/// Parses the table; every bad line is reported as `file:line: problem`.
fn parse_cases(text: &str) -> Result<Vec<Case>, Vec<String>> {
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut bad = |what: String| errors.push(format!("{CASES_PATH}:{line}: {what}"));
        let Some((expect, sql)) = raw.split_once('|') else {
            bad("expected `expect | sql`".into());
            continue;
        };
        let sql = sql.find("  #").map_or(sql, |at| &sql[..at]).trim();
        let sql = sql.replace("{nl}", "\n").replace("{tab}", "\t");
        let mut words = expect.split_whitespace();
        let primary = match words.next() {
            Some("primary") => true,
            Some("any") => false,
            other => {
                bad(format!("route must be `any` or `primary`, not {other:?}"));
                continue;
            }
        };
        let mut case = Case {
            line,
            primary,
            reason: None,
            begin: false,
            end: false,
            ro: false,
            statements: None,
            sql,
        };
        for word in words {
            match word {
                "begin" => case.begin = true,
                "end" => case.end = true,
                "ro" => case.ro = true,
                n if n.starts_with("n=") => match n[2..].parse() {
                    Ok(n) => case.statements = Some(n),
                    Err(_) => bad(format!("bad statement count {n:?}")),
                },
                reason if primary && case.reason.is_none() && REASONS.contains(&reason) => {
                    case.reason = Some(reason.to_owned());
                }
                other => bad(format!("unknown flag or reason {other:?}")),
            }
        }
        cases.push(case);
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

const REASONS: &[&str] = &[
    "write",
    "transaction_start",
    "serializable",
    "locking_read",
    "write_function",
    "select_into",
    "lock",
    "hint",
    "set",
    "session",
    "temp_table",
    "unknown",
];

/// What a case expected that `got` does not give, if anything.
fn mismatch(case: &Case, got: &Classification) -> Option<String> {
    let mut problems = Vec::new();
    match (case.primary, got.route) {
        (false, Route::Any) => {}
        (true, Route::Primary(reason)) => {
            if let Some(want) = &case.reason {
                if want != reason.as_str() {
                    problems.push(format!("reason {reason}, want {want}"));
                }
            }
        }
        (true, Route::Any) => problems.push("routed any, want primary".into()),
        (false, Route::Primary(reason)) => {
            problems.push(format!("routed primary ({reason}), want any"));
        }
    }
    let flags = [
        ("begin", case.begin, got.starts_transaction),
        ("end", case.end, got.ends_transaction),
        ("ro", case.ro, got.read_only_transaction),
    ];
    for (flag, want, got) in flags {
        if want != got {
            problems.push(format!("{flag} is {got}, want {want}"));
        }
    }
    if let Some(n) = case.statements {
        if n != got.statements {
            problems.push(format!("{} statements, want {n}", got.statements));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[test]
fn every_case_in_the_table_classifies_as_written() {
    let cases = parse_cases(CASES).unwrap_or_else(|errors| panic!("\n{}", errors.join("\n")));
    assert!(cases.len() >= 70, "only {} cases", cases.len());
    let config = ClassifyConfig::default();
    let mut report = String::new();
    for case in &cases {
        let got = classify(&case.sql, &config);
        if let Some(problem) = mismatch(case, &got) {
            let _ = writeln!(
                report,
                "{CASES_PATH}:{}: {:?}: {problem}",
                case.line, case.sql
            );
        }
    }
    assert!(report.is_empty(), "mismatches:\n{report}");
}

/// A simple-protocol `Q` message carrying `sql`.
fn simple_query(sql: &str) -> Vec<u8> {
    let mut m = vec![b'Q'];
    m.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    m.extend_from_slice(sql.as_bytes());
    m.push(0);
    m
}

#[test]
fn cached_routes_of_every_case_are_those_classified_directly() {
    let cases = parse_cases(CASES).unwrap_or_else(|errors| panic!("\n{}", errors.join("\n")));
    let config = ClassifyConfig::default();
    let cache = RouteCache::new(config.clone());
    let none = ClientStatements::new();
    let mut texts = std::collections::HashSet::new();
    for case in &cases {
        let message = simple_query(&case.sql);
        let direct = batch_route(&message, &none, &config);
        // The first lookup classifies and stores, the second is served
        // from the cache: both must be the direct answer.
        for lookup in ["first", "second"] {
            let cached = batch_route_cached(&message, &none, &cache, false);
            assert_eq!(
                cached, direct,
                "{CASES_PATH}:{}: {:?} ({lookup} lookup)",
                case.line, case.sql
            );
        }
        if case.sql.len() <= RouteCache::MAX_TEXT {
            texts.insert(case.sql.as_str());
        }
    }
    // Each distinct text was kept once (the table is far below the cap).
    assert_eq!(cache.len(), texts.len());
}

#[test]
fn the_table_parser_reports_bad_lines_with_their_line_numbers() {
    let errors = parse_cases("any | select 1\n\nmaybe | select 1\nprimary nope | x\nno bar\n")
        .err()
        .unwrap();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].ends_with(":3: route must be `any` or `primary`, not Some(\"maybe\")"));
    assert!(errors[1].contains(":4: unknown flag or reason \"nope\""));
    assert!(errors[2].contains(":5: expected `expect | sql`"));
}

#[test]
fn the_write_function_list_is_configurable() {
    let config = ClassifyConfig {
        write_functions: vec!["audit_log".into()],
    };
    let c = classify("SELECT app.AUDIT_LOG('x')", &config);
    assert_eq!(c.route, Route::Primary(Reason::WriteFunction));
    // Not on this list any more.
    assert_eq!(classify("SELECT nextval('s')", &config).route, Route::Any);
}

/// xorshift64*: deterministic, so a failure's seed replays it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces that exercise every lexer state, and the keywords that matter.
const PIECES: &[&str] = &[
    "'",
    "''",
    "\"",
    "\"\"",
    "E'",
    "e'",
    "U&'",
    "u&\"",
    "B'",
    "\\",
    "\\'",
    "$",
    "$$",
    "$a$",
    "$1",
    "$_x$",
    "--",
    "/*",
    "*/",
    "/",
    "*",
    "-",
    "\n",
    "\r",
    " ",
    "\t",
    ";",
    "(",
    ")",
    ",",
    ".",
    "1",
    "1.5e",
    "0x",
    "..",
    "::",
    "select",
    "SELECT",
    "insert",
    "into",
    "update",
    "set",
    "delete",
    "from",
    "for",
    "no",
    "key",
    "share",
    "with",
    "begin",
    "atomic",
    "case",
    "end",
    "read",
    "only",
    "explain",
    "analyze",
    "(analyze",
    "copy",
    "create",
    "temp",
    "declare",
    "hold",
    "nextval(",
    "pgha:primary",
    "é",
    "日本",
    "\u{0}",
    "\u{7f}",
    "\u{a0}",
    "🦀",
];

fn garbage(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(40) {
        if rng.below(4) == 0 {
            // Any char at all, surrogates excepted.
            let c = char::from_u32(rng.next() as u32 % 0x11_0000).unwrap_or('\u{fffd}');
            s.push(c);
        } else {
            s.push_str(PIECES[rng.below(PIECES.len())]);
        }
    }
    s
}

/// The lexer's tokens are in order, slices of the input, and leave only
/// whitespace between them.
fn check_lexer(sql: &str) -> Result<(), String> {
    let base = sql.as_ptr() as usize;
    let mut pos = 0;
    for token in Lexer::new(sql) {
        let start = token.text.as_ptr() as usize - base;
        let gap = sql.get(pos..start).ok_or("token before the last one")?;
        if !gap.bytes().all(|c| b" \t\n\r\x0b\x0c".contains(&c)) {
            return Err(format!("skipped {gap:?} before {token:?}"));
        }
        if token.text.is_empty() {
            return Err(format!("empty token {token:?} at {start}"));
        }
        pos = start + token.text.len();
    }
    let rest = &sql[pos..];
    if rest.bytes().all(|c| b" \t\n\r\x0b\x0c".contains(&c)) {
        Ok(())
    } else {
        Err(format!("left {rest:?} unlexed"))
    }
}

#[test]
fn garbage_never_panics_and_the_lexer_covers_it() {
    let seed = std::env::var("PGHA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c1a5_51f1_u64);
    let mut rng = Rng(seed | 1);
    let config = ClassifyConfig::default();
    for i in 0..20_000 {
        let sql = garbage(&mut rng);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            check_lexer(&sql)?;
            let c = classify(&sql, &config);
            if c.statements > sql.matches(';').count() + 1 {
                return Err(format!("{} statements", c.statements));
            }
            // A hint in front is a whole comment whatever follows it.
            let hinted = classify(&format!("/* pgha:primary */{sql}"), &config);
            if hinted.route != Route::Primary(Reason::Hint) {
                return Err(format!("hint lost: {:?}", hinted.route));
            }
            Ok(())
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("PGHA_SEED={seed} case {i}: {sql:?}: {e}"),
            Err(_) => panic!("PGHA_SEED={seed} case {i}: {sql:?} panicked"),
        }
    }
}

#[test]
fn huge_and_pathological_input_is_classified_without_trouble() {
    let config = ClassifyConfig::default();
    let mb = 1 << 20;
    let cases = [
        ("(".repeat(mb), Route::Any),
        (")".repeat(mb), Route::Primary(Reason::Unknown)),
        ("/*".repeat(mb / 2), Route::Any),
        (format!("select {}", "'".repeat(mb + 1)), Route::Any),
        ("$a$".repeat(mb / 3), Route::Primary(Reason::Unknown)),
        (
            "explain analyze ".repeat(mb / 16),
            Route::Primary(Reason::Unknown),
        ),
        (
            "begin atomic ".repeat(mb / 13),
            Route::Primary(Reason::TransactionStart),
        ),
        (format!("select {} 1", "-".repeat(mb)), Route::Any),
        (";".repeat(mb), Route::Any),
        (
            format!("SELECT '{}'; DELETE FROM t", "x".repeat(mb)),
            Route::Primary(Reason::Write),
        ),
    ];
    for (sql, want) in cases {
        let got = classify(&sql, &config).route;
        assert_eq!(got, want, "{}…", &sql[..20.min(sql.len())]);
    }
}
