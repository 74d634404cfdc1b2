//! The commands that act: parsed with their node, checked against the
//! topology before they run, judged by what the monitor did, answered as a
//! client reads it; and `SHOW STATUS`.

use bytes::BytesMut;
use pgha_core::{Action, Command, NodeId, Status};

use super::{cluster, decode, show, Reply, BOOL, INT8, TEXT};
use crate::admin::{
    check, judge, parse, respond_outcome, Acted, AdminCommand, ControlError, Outcome, ReloadLine,
    ReloadReport,
};

fn done(action: Action) -> Acted {
    Acted {
        action,
        failed: None,
    }
}

fn failed(action: Action, why: &str) -> Acted {
    Acted {
        action,
        failed: Some(why.into()),
    }
}

fn node(name: &str) -> NodeId {
    NodeId::new(name)
}

#[test]
fn node_names_are_words_as_written_quoted_identifiers_or_strings() {
    let promote = |name: &str| Ok(AdminCommand::Cluster(Command::Promote { node: node(name) }));
    assert_eq!(parse("PROMOTE pg2"), promote("pg2"));
    assert_eq!(parse("promote PG2;"), promote("PG2"));
    assert_eq!(parse("PROMOTE \"db-1\""), promote("db-1"));
    assert_eq!(parse("PROMOTE 'db ''one'''"), promote("db 'one'"));
    assert_eq!(
        parse("switchover"),
        Ok(AdminCommand::Cluster(Command::Switchover { target: None }))
    );
    assert_eq!(
        parse("SWITCHOVER b -- to b"),
        Ok(AdminCommand::Cluster(Command::Switchover {
            target: Some(node("b"))
        }))
    );
    for bad in [
        "PROMOTE",
        "ATTACH 1",
        "DETACH a b",
        "PROMOTE ''",
        "PROMOTE E'x'",
        "PROMOTE '\u{1}'",
    ] {
        assert_eq!(parse(bad).map_err(|e| e.sqlstate()), Err("42601"), "{bad}");
    }
    let long = format!("PROMOTE '{}'", "n".repeat(64));
    assert_eq!(parse(&long).map_err(|e| e.sqlstate()), Err("42601"));
}

fn refused(command: Command) -> Option<&'static str> {
    check(&cluster().topology, &command)
        .err()
        .map(|e| e.sqlstate())
}

#[test]
fn commands_the_topology_rules_out_are_refused_before_they_run() {
    // Cluster: a primary, b and c up standbys, d a down standby.
    let promote = |n: &str| Command::Promote { node: node(n) };
    assert_eq!(refused(promote("b")), None);
    assert_eq!(refused(promote("nope")), Some("42704"));
    assert_eq!(refused(promote("a")), Some("55000"), "already the primary");
    assert_eq!(refused(promote("d")), Some("55000"), "down");
    let to = |n: &str| Command::Switchover {
        target: Some(node(n)),
    };
    assert_eq!(refused(to("c")), None);
    assert_eq!(refused(to("d")), Some("55000"));
    assert_eq!(refused(Command::Switchover { target: None }), None);
    assert_eq!(refused(Command::Attach { node: node("d") }), None);
    assert_eq!(refused(Command::Attach { node: node("b") }), Some("55000"));
    assert_eq!(refused(Command::Detach { node: node("b") }), None);
    assert_eq!(refused(Command::Detach { node: node("x") }), Some("42704"));
}

#[test]
fn switchover_needs_a_primary_and_an_up_standby() {
    let mut snapshot = cluster();
    let nodes = snapshot.topology.nodes().iter().cloned().map(|n| {
        if n.id.as_str() == "a" {
            n
        } else {
            n.with_status(Status::Detached)
        }
    });
    snapshot.topology = std::sync::Arc::new(pgha_core::Topology::new(nodes));
    let e = check(&snapshot.topology, &Command::Switchover { target: None });
    assert_eq!(e.map_err(|e| e.sqlstate()), Err("55000"));
}

#[test]
fn a_command_the_policy_declines_is_refused_with_its_reason() {
    let command = Command::Promote { node: node("c") };
    let declined = vec![done(Action::RefusePromotion {
        candidate: node("c"),
        behind_bytes: 1 << 20,
        limit: 4096,
    })];
    let e = judge(command.clone(), declined).err();
    assert_eq!(e.as_ref().map(ControlError::sqlstate), Some("55000"));
    assert!(e.is_some_and(|e| e.to_string().contains("maximum_lag")));
    assert_eq!(
        judge(command.clone(), Vec::new()).map_err(|e| e.sqlstate()),
        Err("55000")
    );
    let promoted = vec![done(Action::Promote {
        node: node("c"),
        term: 4,
    })];
    assert!(judge(command, promoted).is_ok());
}

#[test]
fn a_command_whose_own_action_failed_fails_and_a_step_around_it_is_reported() {
    let switchover = Command::Switchover { target: None };
    let fence = done(Action::Fence {
        node: node("a"),
        term: 4,
    });
    let promote = Action::Promote {
        node: node("b"),
        term: 4,
    };
    let rejoin = Action::Rejoin {
        node: node("a"),
        primary: node("b"),
    };
    let e = judge(
        switchover.clone(),
        vec![
            fence.clone(),
            failed(promote.clone(), "pg_promote() timed out"),
        ],
    )
    .err();
    assert_eq!(e.as_ref().map(ControlError::sqlstate), Some("58000"));
    assert!(e.is_some_and(|e| e.to_string().contains("timed out")));

    let outcome = judge(
        switchover,
        vec![
            fence,
            done(promote),
            failed(rejoin, "sql controller cannot rejoin"),
        ],
    );
    let mut out = BytesMut::new();
    respond_outcome("SWITCHOVER", &outcome, &mut out);
    let replies = decode(out);
    assert_eq!(
        replies[3],
        Reply::Row(vec![
            Some("rejoin".into()),
            Some("a".into()),
            None,
            Some("failed".into()),
            Some("sql controller cannot rejoin".into())
        ])
    );
    assert_eq!(replies.last(), Some(&Reply::Complete("SWITCHOVER".into())));
}

#[test]
fn a_command_done_answers_one_row_per_action_then_its_tag() {
    let outcome = Ok(Outcome::Cluster {
        command: Command::Switchover { target: None },
        actions: vec![
            done(Action::Fence {
                node: node("a"),
                term: 4,
            }),
            done(Action::Promote {
                node: node("b"),
                term: 4,
            }),
        ],
    });
    let mut out = BytesMut::new();
    respond_outcome("SWITCHOVER", &outcome, &mut out);
    let replies = decode(out);
    assert_eq!(
        replies,
        [
            Reply::Columns(vec![
                ("action".into(), TEXT),
                ("node".into(), TEXT),
                ("term".into(), INT8),
                ("status".into(), TEXT),
                ("detail".into(), TEXT),
            ]),
            Reply::Row(vec![
                Some("fence".into()),
                Some("a".into()),
                Some("4".into()),
                Some("done".into()),
                Some(String::new())
            ]),
            Reply::Row(vec![
                Some("promote".into()),
                Some("b".into()),
                Some("4".into()),
                Some("done".into()),
                Some(String::new())
            ]),
            Reply::Complete("SWITCHOVER".into()),
        ]
    );
}

#[test]
fn a_reload_answers_each_changed_setting_and_a_bad_file_is_an_error_with_each_mistake() {
    let report = ReloadReport {
        lines: vec![
            ReloadLine {
                setting: "pool_size".into(),
                applied: true,
                detail: "20 -> 5".into(),
            },
            ReloadLine {
                setting: "listen".into(),
                applied: false,
                detail: "needs a restart".into(),
            },
        ],
    };
    let mut out = BytesMut::new();
    respond_outcome("RELOAD", &Ok(Outcome::Reloaded(report)), &mut out);
    let replies = decode(out);
    assert_eq!(replies.len(), 4);
    assert_eq!(
        replies[2],
        Reply::Row(vec![
            Some("listen".into()),
            Some("not applied".into()),
            Some("needs a restart".into())
        ])
    );
    let mut out = BytesMut::new();
    let bad = Err(ControlError::ConfigInvalid(vec![
        "pgha.toml:3:13: pool_size: must be at least 1".into(),
    ]));
    respond_outcome("RELOAD", &bad, &mut out);
    let replies = decode(out);
    assert!(
        matches!(&replies[..], [Reply::Error { code, .. }] if code == "F0000"),
        "{replies:?}"
    );
}

#[test]
fn show_status_has_a_row_per_node_with_the_term_and_who_leads() {
    let t = show("SHOW STATUS", &cluster());
    assert_eq!(
        t.columns,
        [
            ("node", TEXT),
            ("role", TEXT),
            ("status", TEXT),
            ("term", INT8),
            ("term_primary", BOOL),
            ("lag_bytes", INT8),
            ("lag_us", INT8),
            ("writes_held", TEXT),
            ("paused", BOOL),
            ("leader", TEXT),
            ("lease", TEXT),
            ("vip_holder", TEXT),
        ]
        .map(|(n, oid)| (n.to_owned(), oid))
    );
    assert_eq!(t.rows.len(), 4);
    assert_eq!(t.get(0, "term_primary"), Some("t"));
    assert_eq!(t.get(1, "role"), Some("standby"));
    assert_eq!(t.get(1, "lag_bytes"), Some("256"));
    assert_eq!(t.get(3, "status"), Some("down"));
    assert_eq!(t.get(2, "term"), Some("3"));
    assert_eq!(t.get(0, "writes_held"), None);
    for column in ["leader", "lease", "vip_holder"] {
        assert_eq!(t.get(0, column), Some("single node"));
    }
}
