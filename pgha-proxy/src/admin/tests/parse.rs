use crate::admin::{parse, parse_all, AdminAction, AdminCommand, AdminError, ShowWhat};

#[test]
fn every_show_target_parses_in_any_case() {
    for (what, keyword) in ShowWhat::ALL {
        let lower = format!("show {}", keyword.to_ascii_lowercase());
        assert_eq!(parse(&lower), Ok(AdminCommand::Show(what)), "{lower}");
        assert_eq!(
            parse(&format!("SHOW {keyword}")),
            Ok(AdminCommand::Show(what))
        );
        assert_eq!(what.keyword(), keyword);
    }
}

#[test]
fn whitespace_comments_and_a_trailing_semicolon_are_ignored() {
    let nodes = Ok(AdminCommand::Show(ShowWhat::Nodes));
    assert_eq!(parse("\n\tSHOW\n  nodes  ;  "), nodes);
    assert_eq!(
        parse("/* who is primary? */ SHOW /* really */ NODES -- now\n;"),
        nodes
    );
    assert_eq!(parse("SHOW NODES;;"), nodes);
    assert_eq!(parse("pause"), Ok(AdminCommand::Pause));
    assert_eq!(parse("Resume;"), Ok(AdminCommand::Resume));
    assert_eq!(
        parse("RELOAD -- after editing the file"),
        Ok(AdminCommand::Reload)
    );
}

#[test]
fn only_pause_resume_and_reload_have_actions() {
    assert_eq!(AdminCommand::Pause.action(), Some(AdminAction::Pause));
    assert_eq!(AdminCommand::Resume.action(), Some(AdminAction::Resume));
    assert_eq!(AdminCommand::Reload.action(), Some(AdminAction::Reload));
    for (what, _) in ShowWhat::ALL {
        assert_eq!(AdminCommand::Show(what).action(), None);
    }
}

#[test]
fn several_statements_parse_in_order() {
    assert_eq!(
        parse_all("SHOW POOLS; pause ;; /* x */ ; show stats"),
        Ok(vec![
            AdminCommand::Show(ShowWhat::Pools),
            AdminCommand::Pause,
            AdminCommand::Show(ShowWhat::Stats),
        ])
    );
    assert_eq!(parse_all(" ; -- nothing\n"), Ok(vec![]));
    assert!(
        matches!(parse("SHOW NODES; SHOW POOLS"), Err(AdminError::Syntax { near }) if near == "SHOW POOLS"),
        "parse takes exactly one statement"
    );
}

#[test]
fn an_unknown_show_target_is_not_supported() {
    let e = parse("SHOW databases").err();
    assert_eq!(
        e,
        Some(AdminError::UnknownShow {
            what: "databases".into()
        })
    );
    let e = e.unwrap();
    assert_eq!(e.sqlstate(), "0A000");
    assert!(
        e.hint().contains("POOL_NODES"),
        "the hint lists the commands"
    );
}

#[test]
fn anything_else_is_a_syntax_error_naming_where() {
    let near = |sql: &str| match parse(sql) {
        Err(e @ AdminError::Syntax { .. }) => {
            assert_eq!(e.sqlstate(), "42601");
            e.to_string()
        }
        other => panic!("{sql}: {other:?}"),
    };
    assert_eq!(near("SELECT 1"), "syntax error at or near \"SELECT\"");
    assert_eq!(near("SHOW"), "syntax error at end of input");
    assert_eq!(near("SHOW -- nothing\n;"), "syntax error at end of input");
    assert_eq!(near("SHOW 'nodes'"), "syntax error at or near \"'nodes'\"");
    assert_eq!(
        near("SHOW \"NODES\""),
        "syntax error at or near \"\"NODES\"\""
    );
    assert_eq!(near("PAUSE mydb"), "syntax error at or near \"mydb\"");
    assert_eq!(
        near("SHOW NODES extra"),
        "syntax error at or near \"extra\""
    );
    assert_eq!(near("; , ;"), "syntax error at or near \",\"");
    assert_eq!(near(""), "syntax error at end of input");
}

#[test]
fn a_bad_statement_anywhere_fails_the_whole_string() {
    assert!(parse_all("PAUSE; SHOW nodes; bogus").is_err());
    assert!(parse_all("bogus; PAUSE").is_err());
}

#[test]
fn echoed_input_is_shortened() {
    let long = "x".repeat(10_000);
    let Err(AdminError::UnknownShow { what }) = parse(&format!("SHOW {long}")) else {
        panic!("an unknown target");
    };
    assert_eq!(what.len(), 64);
    let multibyte = "é".repeat(100);
    let Err(AdminError::Syntax { near }) = parse(&multibyte) else {
        panic!("a syntax error");
    };
    assert_eq!(near.chars().count(), 64, "cut on a character boundary");
}

#[test]
fn control_characters_are_escaped_in_errors() {
    let Err(AdminError::Syntax { near }) = parse("\0") else {
        panic!("a NUL is no command");
    };
    assert_eq!(
        near, "\\u{0}",
        "a raw NUL would cut the error message short"
    );
    let Err(AdminError::Syntax { near }) = parse("SHOW \"a\nb\"") else {
        panic!("a quoted target is no keyword");
    };
    assert_eq!(near, "\"a\\nb\"");
}
