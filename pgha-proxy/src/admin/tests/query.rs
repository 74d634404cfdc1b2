use proptest::prelude::*;

use super::{cluster, run, Reply};
use pgha_core::{Command, NodeId};

use crate::admin::{parse, AdminAction, AdminCommand, ShowWhat};

fn complete(tag: &str) -> Reply {
    Reply::Complete(tag.to_owned())
}

fn error_code(reply: &Reply) -> Option<&str> {
    match reply {
        Reply::Error { code, .. } => Some(code),
        _ => None,
    }
}

#[test]
fn each_statement_of_a_string_is_answered_in_order() {
    let (replies, actions) = run("SHOW CONFIG; pause; SHOW NODES;", &cluster());
    let tags: Vec<&Reply> = replies
        .iter()
        .filter(|r| matches!(r, Reply::Complete(_)))
        .collect();
    assert_eq!(
        tags,
        [&complete("SHOW"), &complete("PAUSE"), &complete("SHOW")]
    );
    assert_eq!(
        replies[0],
        Reply::Columns(
            ["key", "value", "default", "changeable"]
                .iter()
                .zip([25, 25, 25, 16])
                .map(|(n, oid)| (n.to_string(), oid))
                .collect()
        )
    );
    assert_eq!(actions, [AdminAction::Pause]);
}

#[test]
fn a_command_that_acts_is_answered_by_the_session_once_done() {
    let (replies, actions) = run("RELOAD", &cluster());
    assert!(replies.is_empty(), "{replies:?}");
    assert_eq!(actions, [AdminAction::Reload]);
}

#[test]
fn a_command_that_acts_must_be_alone_and_nothing_runs_otherwise() {
    for sql in [
        "PAUSE; RELOAD",
        "RELOAD; SHOW NODES",
        "SHOW STATUS; PROMOTE db2",
    ] {
        let (replies, actions) = run(sql, &cluster());
        assert_eq!(
            replies.iter().filter_map(error_code).collect::<Vec<_>>(),
            ["0A000"],
            "{sql}"
        );
        assert_eq!(replies.len(), 1, "{sql}: {replies:?}");
        assert!(actions.is_empty(), "{sql}: nothing ran");
    }
}

#[test]
fn a_bad_statement_answers_one_error_and_runs_nothing() {
    for (sql, code) in [
        ("PAUSE; SHOW tables", "0A000"),
        ("PAUSE; SELECT 1", "42601"),
        ("SHOW NODES extra; RELOAD", "42601"),
    ] {
        let (replies, actions) = run(sql, &cluster());
        assert_eq!(replies.len(), 1, "{sql}: {replies:?}");
        let Reply::Error {
            code: got,
            message,
            hint,
        } = &replies[0]
        else {
            panic!("{sql}: not an error");
        };
        assert_eq!(got, code, "{sql}");
        assert!(!message.is_empty());
        assert!(
            hint.contains("SHOW NODES") && hint.contains("RELOAD"),
            "{hint}"
        );
        assert!(actions.is_empty(), "{sql}: nothing ran");
    }
}

#[test]
fn a_string_without_statements_gets_an_empty_query_response() {
    for sql in ["", "  ", ";", " ; -- just a comment", "/* a */ ; /* b */"] {
        assert_eq!(
            run(sql, &cluster()),
            (vec![Reply::Empty], vec![]),
            "{sql:?}"
        );
    }
}

#[test]
fn pause_and_resume_refuse_the_state_they_would_set() {
    let mut snapshot = cluster();
    let (replies, actions) = run("RESUME", &snapshot);
    assert_eq!(
        replies.iter().filter_map(error_code).collect::<Vec<_>>(),
        ["55000"]
    );
    assert!(actions.is_empty());

    // The state follows the string: the second PAUSE sees the first.
    let (replies, actions) = run("PAUSE; PAUSE; RESUME", &snapshot);
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0], complete("PAUSE"));
    assert_eq!(error_code(&replies[1]), Some("55000"));
    assert_eq!(
        actions,
        [AdminAction::Pause],
        "RESUME after the error did not run"
    );

    snapshot.paused = true;
    let (replies, _) = run("PAUSE", &snapshot);
    assert_eq!(
        replies.iter().filter_map(error_code).collect::<Vec<_>>(),
        ["55000"]
    );
    let (replies, actions) = run("RESUME; PAUSE", &snapshot);
    assert_eq!(replies, [complete("RESUME"), complete("PAUSE")]);
    assert_eq!(actions, [AdminAction::Resume, AdminAction::Pause]);
}

/// Mixed-case spelling of a keyword, chosen by `mask`.
fn spell(keyword: &str, mask: u64) -> String {
    keyword
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Fragments that steer random strings into the parser's every branch.
fn sqlish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "SHOW",
        "show",
        "NODES",
        "pool_nodes",
        "PAUSE",
        "RESUME",
        "reload",
        "HELP",
        "promote",
        "SWITCHOVER",
        "attach",
        "'db 1'",
        "status",
        "x",
        ";",
        " ",
        "\n",
        "--",
        "/*",
        "*/",
        "'",
        "\"",
        "$$",
        "$1",
        "E'\\'",
        "1.5e3",
        "é",
        "\0",
    ]);
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn no_query_string_breaks_the_console(sql in prop_oneof![any::<String>(), sqlish()]) {
        let mut snapshot = cluster();
        snapshot.paused = sql.len() % 2 == 0;
        // `run` panics on bytes that are not whole backend messages.
        let (replies, actions) = run(&sql, &snapshot);
        // A command that acts is alone and answered by the session.
        let acting = actions
            .iter()
            .any(|a| matches!(a, AdminAction::Reload | AdminAction::Cluster(_)));
        prop_assert!(acting || !replies.is_empty(), "every string gets an answer");
        let errors: Vec<usize> = replies
            .iter()
            .enumerate()
            .filter(|(_, r)| error_code(r).is_some())
            .map(|(i, _)| i)
            .collect();
        prop_assert!(errors.len() <= 1);
        if let Some(&at) = errors.first() {
            prop_assert_eq!(at, replies.len() - 1, "nothing follows an error");
            let code = error_code(&replies[at]).unwrap_or_default();
            prop_assert!(["42601", "0A000", "55000"].contains(&code), "{}", code);
        }
        let completed_actions = replies
            .iter()
            .filter(|r| matches!(r, Reply::Complete(tag) if tag != "SHOW"))
            .count();
        let answered_here = actions
            .iter()
            .filter(|a| matches!(a, AdminAction::Pause | AdminAction::Resume))
            .count();
        prop_assert_eq!(answered_here, completed_actions, "one action per command answered");
    }

    #[test]
    fn commands_parse_however_they_are_spelled(
        index in 0..ShowWhat::ALL.len() + 7,
        masks in any::<(u64, u64)>(),
        gap in prop::sample::select(vec![" ", "\t", "\n  ", " /* c */ ", " -- c\n"]),
        end in prop::sample::select(vec!["", ";", " ; ", ";;", " -- bye"]),
    ) {
        let (command, sql) = match ShowWhat::ALL.get(index) {
            Some(&(what, keyword)) => (
                AdminCommand::Show(what),
                format!("{}{gap}{}{end}", spell("show", masks.0), spell(keyword, masks.1)),
            ),
            None => {
                let node = || NodeId::new("db2");
                let command = [
                    AdminCommand::Pause,
                    AdminCommand::Resume,
                    AdminCommand::Reload,
                    AdminCommand::Cluster(Command::Promote { node: node() }),
                    AdminCommand::Cluster(Command::Switchover { target: None }),
                    AdminCommand::Cluster(Command::Switchover { target: Some(node()) }),
                    AdminCommand::Cluster(Command::Detach { node: node() }),
                ][index - ShowWhat::ALL.len()]
                .clone();
                // Keywords in any case; the node's name as written.
                let words = command.to_string();
                let (keyword, name) = words.split_once(' ').unwrap_or((&words, ""));
                let name = if name.is_empty() { String::new() } else { format!("{gap}{name}") };
                let sql = format!("{gap}{}{name}{end}", spell(keyword, masks.0));
                (command, sql)
            }
        };
        prop_assert_eq!(parse(&sql), Ok(command), "{:?}", sql);
    }
}
