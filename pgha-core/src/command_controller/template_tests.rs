#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::path::PathBuf;

use super::*;
use crate::Role;

fn values() -> CommandValues {
    let old = NodeState::new("node0", Role::Unknown, "db0", 5432);
    let new = NodeState::new("node1", Role::Primary, "db1", 5433);
    let subject = NodeState::new("node2", Role::Standby, "db2", 5434);
    CommandValues {
        node: Some(CommandNode::new(&subject, Some(PathBuf::from("/pg/2")))),
        new_main: Some(CommandNode::new(&new, Some(PathBuf::from("/pg/1")))),
        old_primary: Some(CommandNode::new(&old, None)),
    }
}

#[test]
fn renders_every_placeholder_quoted() {
    // (template, rendered)
    let cases = [
        ("x", "x"),
        ("", ""),
        ("%d %h %p %D", "'node2' 'db2' '5434' '/pg/2'"),
        ("%m %H %r %R", "'node1' 'db1' '5433' '/pg/1'"),
        ("%M %P %N %S", "'node0' 'node0' 'db0' '5432'"),
        ("100%%", "100%"),
        ("%%d", "%d"),
        ("%%%d", "%'node2'"),
        ("a%db", "a'node2'b"),
        ("--host=%h", "--host='db2'"),
        ("f.sh %d # %h", "f.sh 'node2' # 'db2'"),
        ("echo \"x\" %d", "echo \"x\" 'node2'"),
        ("echo 'it''s' %d", "echo 'it''s' 'node2'"),
        ("echo \\' %d", "echo \\' 'node2'"),
        ("echo $(hostname) %h", "echo $(hostname) 'db2'"),
        ("# it's a comment\nrun %d", "# it's a comment\nrun 'node2'"),
        ("%D%R", "'/pg/2''/pg/1'"),
    ];
    for (template, rendered) in cases {
        let parsed = CommandTemplate::parse("test_command", template).unwrap();
        assert_eq!(parsed.render(&values()), rendered, "template {template:?}");
        assert_eq!(parsed.as_str(), template);
    }
}

#[test]
fn unknown_values_render_as_minus_one_or_empty() {
    let cases = [
        ("%d %h %p %D", "'-1' '' '' ''"),
        ("%m %H %r %R", "'-1' '' '' ''"),
        ("%M %P %N %S", "'-1' '-1' '' ''"),
    ];
    for (template, rendered) in cases {
        let parsed = CommandTemplate::parse("test_command", template).unwrap();
        assert_eq!(
            parsed.render(&CommandValues::default()),
            rendered,
            "template {template:?}"
        );
    }
}

#[test]
fn values_are_single_shell_words() {
    // (host, its quoted form)
    let cases = [
        ("plain", "'plain'"),
        ("", "''"),
        ("it's", r"'it'\''s'"),
        ("'; touch /tmp/pwned #", r"''\''; touch /tmp/pwned #'"),
        ("$(reboot)", "'$(reboot)'"),
        ("`id`", "'`id`'"),
        ("a b\nc", "'a b\nc'"),
        ("\\", "'\\'"),
        ("''", r"''\'''\'''"),
    ];
    let template = CommandTemplate::parse("test_command", "%h").unwrap();
    for (host, quoted) in cases {
        let node = NodeState::new("n", Role::Standby, host, 1);
        let values = CommandValues {
            node: Some(CommandNode::new(&node, None)),
            ..CommandValues::default()
        };
        assert_eq!(template.render(&values), quoted, "host {host:?}");
    }
}

#[test]
fn rejects_what_quoting_cannot_protect() {
    // (template, part of the error)
    let cases = [
        ("f.sh %x", "unknown placeholder %x at byte 5"),
        ("f.sh %", "lone % at byte 5"),
        ("100%", "lone % at byte 3"),
        ("f.sh %n", "unknown placeholder %n"),
        ("f.sh '%h'", "%h at byte 6 is quoted or escaped"),
        ("f.sh \"%h\"", "%h at byte 6 is quoted or escaped"),
        ("f.sh `echo %h`", "%h at byte 11 is quoted or escaped"),
        ("f.sh \\%h", "%h at byte 6 is quoted or escaped"),
        ("f.sh \"$(echo %h)\"", "is quoted or escaped"),
        ("cat <<EOF\n%h\nEOF", "placeholders with a here-document"),
        ("%d <<EOF\nx\nEOF", "placeholders with a here-document"),
    ];
    for (template, expected) in cases {
        let error = CommandTemplate::parse("promote_command", template).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(expected) && message.contains("promote_command"),
            "template {template:?}: {message}"
        );
        assert!(matches!(error, Error::Config { .. }));
    }
}

#[test]
fn here_documents_without_placeholders_are_fine() {
    let template = CommandTemplate::parse("c", "cat <<EOF\n100%%\nEOF").unwrap();
    assert_eq!(
        template.render(&CommandValues::default()),
        "cat <<EOF\n100%\nEOF"
    );
}
