//! `CommandNodeController` runs real scripts: the exact arguments they get,
//! failures with their output, hung scripts killed, values that cannot
//! inject shell syntax.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgha_core::{
    ClusterState, CommandControllerConfig, CommandNodeController, DefaultPolicy, Error, Event,
    FailureReason, Fenced, NodeController, NodeState, Observation, Role, Topology,
};
use tempfile::TempDir;
use tokio::sync::watch;

/// A temp dir with `record.sh NAME ARGS…`, which writes each argument on
/// its own line to `NAME.args`.
struct Scripts {
    dir: TempDir,
}

impl Scripts {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let scripts = Scripts { dir };
        scripts.write(
            "record.sh",
            "out=\"$(dirname \"$0\")/$1.args\"; shift\n: > \"$out\"\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> \"$out\"; done\n",
        );
        scripts
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, body: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    /// `record.sh NAME` followed by `placeholders`.
    fn recorder(&self, name: &str, placeholders: &str) -> String {
        format!("{} {name} {placeholders}", self.path("record.sh").display())
    }

    fn recorded(&self, name: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.path(&format!("{name}.args"))).unwrap();
        text.lines().map(str::to_string).collect()
    }
}

const ALL: &str = "%d %h %p %D %m %H %r %R %M %P %N %S 100%%";

fn node(name: &str, role: Role, port: u16) -> NodeState {
    NodeState::new(name, role, format!("{name}.db"), port)
}

fn config(scripts: &Scripts) -> CommandControllerConfig {
    let mut config = CommandControllerConfig::new(scripts.recorder("promote", ALL));
    config.follow_command = Some(scripts.recorder("follow", ALL));
    config.fence_command = Some(scripts.recorder("fence", ALL));
    config.rejoin_command = Some(scripts.recorder("rejoin", ALL));
    config.data_dirs.insert("a".into(), "/pg/a".into());
    config.data_dirs.insert("c".into(), "/pg/c".into());
    config
}

fn three_nodes() -> Topology {
    Topology::new([
        node("a", Role::Primary, 5432),
        node("b", Role::Standby, 5433),
        node("c", Role::Standby, 5434).with_priority(2),
    ])
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// The cluster after `a` failed twice: `c` (highest priority) promoted in
/// term 2.
fn failed_over(cluster: &mut ClusterState) {
    let failed = |secs| Event::Observed {
        node: "a".into(),
        at: Duration::from_secs(secs),
        observation: Observation::Failed {
            reason: FailureReason::ConnectRefused,
        },
    };
    cluster.handle(failed(1));
    cluster.handle(failed(2));
    assert_eq!(cluster.snapshot().primary_id(), Some(&"c".into()));
}

#[tokio::test]
async fn promote_gets_pgpool_failover_arguments_even_when_the_new_topology_is_published_first() {
    let scripts = Scripts::new();
    let mut cluster = ClusterState::new(three_nodes(), DefaultPolicy::default());
    let (publish, topology) = watch::channel(cluster.snapshot());
    let controller = CommandNodeController::new(config(&scripts))
        .unwrap()
        .with_topology(topology);

    failed_over(&mut cluster);
    publish.send_replace(cluster.snapshot());
    let promoted = cluster.snapshot().node(&"c".into()).unwrap().clone();
    controller.promote(&promoted, 2).await.unwrap();

    // %d %h %p %D: the failed primary; %m %H %r %R: the promoted node.
    assert_eq!(
        scripts.recorded("promote"),
        strings(&[
            "a", "a.db", "5432", "/pg/a", "c", "c.db", "5434", "/pg/c", "a", "a", "a.db", "5432",
            "100%"
        ])
    );
}

#[tokio::test]
async fn follow_fence_and_rejoin_get_the_node_and_its_new_primary() {
    let scripts = Scripts::new();
    let (publish, topology) = watch::channel(Arc::new(three_nodes()));
    let controller = CommandNodeController::new(config(&scripts))
        .unwrap()
        .with_topology(topology);
    let mut cluster = ClusterState::new(three_nodes(), DefaultPolicy::default());
    failed_over(&mut cluster);
    publish.send_replace(cluster.snapshot());
    let (a, b, c) = (
        node("a", Role::Unknown, 5432),
        node("b", Role::Standby, 5433),
        node("c", Role::Primary, 5434),
    );

    controller.follow(&b, &c).await.unwrap();
    assert_eq!(
        scripts.recorded("follow"),
        strings(&[
            "b", "b.db", "5433", "", "c", "c.db", "5434", "/pg/c", "a", "a", "a.db", "5432", "100%"
        ])
    );

    assert_eq!(controller.fence(&a).await.unwrap(), Fenced::Confirmed);
    assert_eq!(
        scripts.recorded("fence"),
        strings(&[
            "a", "a.db", "5432", "/pg/a", "c", "c.db", "5434", "/pg/c", "a", "a", "a.db", "5432",
            "100%"
        ])
    );

    controller.rejoin(&a, &c).await.unwrap();
    assert_eq!(
        scripts.recorded("rejoin"),
        strings(&[
            "a", "a.db", "5432", "/pg/a", "c", "c.db", "5434", "/pg/c", "a", "a", "a.db", "5432",
            "100%"
        ])
    );
}

#[tokio::test]
async fn without_a_topology_old_primary_values_are_minus_one_and_empty() {
    let scripts = Scripts::new();
    let controller = CommandNodeController::new(config(&scripts)).unwrap();
    controller
        .promote(&node("c", Role::Standby, 5434), 2)
        .await
        .unwrap();
    assert_eq!(
        scripts.recorded("promote"),
        strings(&["-1", "", "", "", "c", "c.db", "5434", "/pg/c", "-1", "-1", "", "", "100%"])
    );
}

#[tokio::test]
async fn a_successful_promotion_is_not_run_twice_for_the_same_term() {
    let scripts = Scripts::new();
    let count = scripts.path("count");
    let line = format!("echo x >> {}", count.display());
    let controller = CommandNodeController::new(CommandControllerConfig::new(line)).unwrap();
    let c = node("c", Role::Standby, 5434);
    controller.promote(&c, 2).await.unwrap();
    controller.promote(&c, 2).await.unwrap();
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "x\n");
    controller.promote(&c, 3).await.unwrap();
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "x\nx\n");
}

#[tokio::test]
async fn a_failing_script_gives_its_status_and_the_tail_of_its_output() {
    let scripts = Scripts::new();
    let script = scripts.write(
        "failover.sh",
        "for i in $(seq 1 30); do echo \"line $i\"; done\necho 'pg_ctl: server is not in standby mode' >&2\nexit 3\n",
    );
    let controller =
        CommandNodeController::new(CommandControllerConfig::new(format!("{script} %m"))).unwrap();

    let error = controller
        .promote(&node("c", Role::Standby, 5434), 2)
        .await
        .unwrap_err();

    let Error::Command {
        command,
        status,
        output,
    } = error
    else {
        panic!("not a command error: {error}");
    };
    assert_eq!(command, format!("{script} 'c'"));
    assert!(status.contains('3'), "{status}");
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 20, "{output}");
    assert_eq!(lines[0], "line 12");
    assert_eq!(lines[19], "pg_ctl: server is not in standby mode");
}

#[tokio::test]
async fn a_hung_script_and_its_children_are_killed_after_the_timeout() {
    let scripts = Scripts::new();
    let pid_file = scripts.path("sleep.pid");
    let script = scripts.write(
        "hang.sh",
        &format!(
            "echo promoting\nsleep 30 &\necho $! > {}\nwait\n",
            pid_file.display()
        ),
    );
    let mut config = CommandControllerConfig::new(script);
    config.timeout = Duration::from_millis(300);
    let controller = CommandNodeController::new(config).unwrap();

    let started = Instant::now();
    let error = controller
        .promote(&node("c", Role::Standby, 5434), 2)
        .await
        .unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let Error::Command { status, output, .. } = &error else {
        panic!("not a command error: {error}");
    };
    assert_eq!(status, "timed out after 300ms");
    assert_eq!(output, "promoting");
    let sleep_pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        gone_within(sleep_pid.trim(), Duration::from_secs(2)),
        "the script's `sleep 30` survived"
    );
}

/// Whether process `pid` is gone (or a zombie) within `limit`.
fn gone_within(pid: &str, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .unwrap()
                    .trim_start()
                    .starts_with('Z') =>
            {
                return true
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

#[tokio::test]
async fn a_value_cannot_inject_shell_syntax() {
    let scripts = Scripts::new();
    let pwned = scripts.path("pwned");
    let host = format!("'; touch {} #", pwned.display());
    let controller = CommandNodeController::new(CommandControllerConfig::new(
        scripts.recorder("promote", "%H"),
    ))
    .unwrap();

    controller
        .promote(&NodeState::new("c", Role::Standby, host.clone(), 5434), 2)
        .await
        .unwrap();

    assert!(!pwned.exists(), "the host name ran a command");
    assert_eq!(scripts.recorded("promote"), vec![host]);
}

#[tokio::test]
async fn fence_without_a_command_is_never_confirmed() {
    let scripts = Scripts::new();
    let controller =
        CommandNodeController::new(CommandControllerConfig::new(scripts.recorder("p", "%d")))
            .unwrap();
    let fenced = controller
        .fence(&node("a", Role::Primary, 5432))
        .await
        .unwrap();
    assert!(matches!(fenced, Fenced::NotConfirmed { .. }), "{fenced:?}");
}

#[tokio::test]
async fn a_failing_fence_command_is_not_confirmed() {
    let mut config = CommandControllerConfig::new("true");
    config.fence_command = Some("echo cannot reach %h; exit 1".to_string());
    let controller = CommandNodeController::new(config).unwrap();
    let fenced = controller
        .fence(&node("a", Role::Primary, 5432))
        .await
        .unwrap();
    let Fenced::NotConfirmed { why } = fenced else {
        panic!("confirmed without a fence");
    };
    assert!(why.contains("cannot reach a.db"), "{why}");
}

#[tokio::test]
async fn follow_and_rejoin_without_a_command_are_unsupported() {
    let controller = CommandNodeController::new(CommandControllerConfig::new("true")).unwrap();
    let (a, c) = (
        node("a", Role::Unknown, 5432),
        node("c", Role::Primary, 5434),
    );
    for error in [
        controller.follow(&a, &c).await.unwrap_err(),
        controller.rejoin(&a, &c).await.unwrap_err(),
    ] {
        assert!(matches!(error, Error::Unsupported { .. }), "{error}");
    }
}

#[test]
fn unknown_placeholders_are_rejected_when_the_controller_is_built() {
    // (setting, command, part of the error)
    let cases = [
        (
            "promote_command",
            "failover.sh %d %Z",
            "unknown placeholder %Z",
        ),
        ("follow_command", "follow.sh %q", "unknown placeholder %q"),
        ("fence_command", "fence.sh '%h'", "quoted or escaped"),
        ("rejoin_command", "rejoin.sh 50%", "lone %"),
    ];
    for (setting, command, expected) in cases {
        let mut config = CommandControllerConfig::new("true");
        match setting {
            "promote_command" => config.promote_command = command.to_string(),
            "follow_command" => config.follow_command = Some(command.to_string()),
            "fence_command" => config.fence_command = Some(command.to_string()),
            _ => config.rejoin_command = Some(command.to_string()),
        }
        let error = CommandNodeController::new(config).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, Error::Config { .. })
                && message.contains(setting)
                && message.contains(expected),
            "{setting} = {command:?}: {message}"
        );
    }
    let mut config = CommandControllerConfig::new("true");
    config.timeout = Duration::ZERO;
    assert!(CommandNodeController::new(config).is_err());
}
