//! A file maps onto the library settings; flags win; the example parses;
//! check-config's output reads back. Mistakes are in `error_tests.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use pgha_core::{DefaultPolicy, MonitorConfig, Role, SqlControllerConfig};
use pgha_proxy::{PoolMode, ProxyConfig};

use super::*;
use crate::args::RunArgs;

mod cluster_tests;
mod error_tests;

/// No environment variable is set.
pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

/// A directory holding an hba file, an auth file, and a self-signed
/// certificate (`proxy.crt`, also as the CA `ca.crt`) with its key.
pub(super) fn auth_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    for name in ["proxy.crt", "ca.crt"] {
        std::fs::write(dir.path().join(name), made.cert.pem()).unwrap();
    }
    std::fs::write(
        dir.path().join("proxy.key"),
        made.signing_key.serialize_pem(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hba.conf"),
        "host all all 127.0.0.1/32 trust\nhost all all 0.0.0.0/0 md5\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("users.txt"), "\"app\" \"secret\"\n").unwrap();
    dir
}

const FULL: &str = r#"
[proxy]
listen = "0.0.0.0:9999"
http = "127.0.0.1:9930"
unix_socket_dir = "run"
pool_mode = "transaction"
pool_size = 7
min_pool_size = 2
pool_timeout = "5s"
max_client_conn = 300
load_balance = false
max_standby_lag = "16MB"
max_standby_lag_time = "15s"
no_primary_wait = "12s"
server_idle_timeout = "2m"
server_lifetime = "30m"
server_reset_query = ""
connect_timeout = "800ms"
standby_connect_timeout = "300ms"
standby_read_timeout = "3s"
max_prepared_statements = 50
startup_timeout = "4s"
admin_users = ["dba", "ops"]

[tls]
cert_file = "proxy.crt"
key_file = "proxy.key"
required = true

[server]
user = "pgha_proxy"
password_env = "TEST_SERVER_PW"

[server_tls]
mode = "verify-full"
ca_file = "ca.crt"

[auth]
hba_file = "hba.conf"
auth_file = "users.txt"
auth_query = "SELECT rolpassword FROM pg_authid WHERE rolname = $1"

[monitor]
probe_interval = "250ms"
probe_timeout = "2s"
failures_before_down = 3
minimum_down_time = "1s"
maximum_lag = "none"
auto_rejoin = false
state_file = "state.json"
catch_up_timeout = "45s"
action_timeout = "20s"
user = "monitor"
password = "m0n"
dbname = "admin"
replication_user = "repl"
replication_password_env = "TEST_REPL_PW"

[[node]]
name = "a"
host = "10.0.0.1"
weight = 0
priority = 5

[[node]]
name = "b"
host = "10.0.0.2"
port = 5433
"#;

fn full_env(name: &str) -> Option<String> {
    match name {
        "TEST_SERVER_PW" => Some("from-env".into()),
        "TEST_REPL_PW" => Some("repl-pw".into()),
        _ => None,
    }
}

fn parse_full(dir: &Path) -> RunConfig {
    parse(FULL, &dir.join("pgha.toml"), &full_env).unwrap()
}

#[test]
fn a_full_file_sets_every_value() {
    let dir = auth_dir();
    let c = parse_full(dir.path());
    assert_eq!(c.listen, "0.0.0.0:9999".parse().unwrap());
    assert_eq!(c.http, Some("127.0.0.1:9930".parse().unwrap()));
    assert_eq!(c.unix_socket_dir, Some(dir.path().join("run")));
    let p = &c.proxy;
    assert!(p.tls.is_some() && p.tls_required);
    assert!(p.server_tls.as_ref().is_some_and(|t| t.required()));
    assert_eq!(
        c.tls,
        TlsSettings {
            cert_file: Some(dir.path().join("proxy.crt")),
            key_file: Some(dir.path().join("proxy.key")),
            server_mode: ServerTlsMode::VerifyFull,
            server_ca_file: Some(dir.path().join("ca.crt")),
        }
    );
    assert_eq!(p.pool_mode, PoolMode::Transaction);
    assert_eq!(p.pool_size, 7);
    assert_eq!(p.min_pool_size, 2);
    assert_eq!(p.pool_timeout, Duration::from_secs(5));
    assert_eq!(p.max_client_conn, 300);
    assert!(!p.load_balance);
    assert_eq!(p.max_standby_lag_bytes, Some(16 << 20));
    assert_eq!(p.max_standby_lag_time, Some(Duration::from_secs(15)));
    assert_eq!(p.no_primary_wait, Duration::from_secs(12));
    assert_eq!(p.server_idle_timeout, Duration::from_secs(120));
    assert_eq!(p.server_lifetime, Duration::from_secs(1800));
    assert_eq!(p.server_reset_query, "");
    assert_eq!(
        p.auth_query.as_deref(),
        Some("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
    );
    assert_eq!(p.connect_timeout, Duration::from_millis(800));
    assert_eq!(p.standby_connect_timeout, Duration::from_millis(300));
    assert_eq!(p.standby_read_timeout, Duration::from_secs(3));
    assert_eq!(p.max_prepared_statements, 50);
    assert_eq!(p.startup_timeout, Duration::from_secs(4));
    assert_eq!(p.admin_users, ["dba", "ops"]);
    assert_eq!(p.server_auth.user.as_deref(), Some("pgha_proxy"));
    assert_eq!(p.server_auth.password.as_deref(), Some("from-env"));

    let auth = p.client_auth.as_ref().unwrap();
    assert_eq!(auth.hba.rules().len(), 2);
    assert!(auth.users.lookup("app").is_some());
    assert_eq!(c.hba_file, Some(dir.path().join("hba.conf")));
    assert_eq!(c.auth_file, Some(dir.path().join("users.txt")));

    assert_eq!(c.monitor.probe_interval, Duration::from_millis(250));
    assert_eq!(c.monitor.probe_timeout, Duration::from_secs(2));
    assert_eq!(c.monitor.catch_up_timeout, Duration::from_secs(45));
    // Relative to the file, not to the working directory.
    assert_eq!(c.monitor.state_file, Some(dir.path().join("state.json")));
    assert_eq!(
        c.policy,
        DefaultPolicy {
            failures_before_down: 3,
            maximum_lag_bytes: None,
            auto_rejoin: false,
            minimum_down_time: Duration::from_secs(1),
        }
    );
    assert_eq!(c.controller.timeout, Duration::from_secs(20));
    let connect = &c.controller.connect;
    assert_eq!(connect.user, "monitor");
    assert_eq!(connect.password.as_deref(), Some("m0n"));
    assert_eq!(connect.dbname, "admin");
    assert_eq!(connect.replication_user, "repl");
    assert_eq!(connect.replication_password.as_deref(), Some("repl-pw"));

    let topology = c.topology();
    let nodes = topology.nodes();
    let summary: Vec<_> = nodes
        .iter()
        .map(|n| {
            (
                n.id.as_str(),
                n.role,
                n.host.as_str(),
                n.port,
                n.weight,
                n.priority,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a", Role::Primary, "10.0.0.1", 5432, 0, 5),
            ("b", Role::Standby, "10.0.0.2", 5433, 1, 1),
        ]
    );
}

#[test]
fn missing_keys_keep_the_library_defaults() {
    let c = parse(
        "[[node]]\nname = \"a\"\nhost = \"h\"\n",
        Path::new("pgha.toml"),
        &no_env,
    )
    .unwrap();
    assert_eq!(c.listen, DEFAULT_LISTEN);
    assert_eq!(c.http, None);
    assert_eq!(c.proxy.settings(), ProxyConfig::default().settings());
    let monitor = MonitorConfig::default();
    assert_eq!(c.monitor.probe_interval, monitor.probe_interval);
    assert_eq!(c.monitor.probe_timeout, monitor.probe_timeout);
    assert_eq!(c.monitor.catch_up_timeout, monitor.catch_up_timeout);
    assert_eq!(c.monitor.state_file, None);
    assert_eq!(c.policy, DefaultPolicy::default());
    assert_eq!(c.controller, SqlControllerConfig::default());
    assert!(c.proxy.client_auth.is_none());
    assert!(c.proxy.tls.is_none() && c.proxy.server_tls.is_none());
    assert_eq!(c.tls, TlsSettings::default());
    assert_eq!(c.unix_socket_dir, None);
    assert_eq!(c.threads, 1, "one thread, like PgBouncer");
}

#[test]
fn threads_spread_the_proxy_over_more_cores_and_read_back() {
    let c = parse(
        "[proxy]\nthreads = 4\n[[node]]\nname = \"a\"\nhost = \"h\"\n",
        Path::new("pgha.toml"),
        &no_env,
    )
    .unwrap();
    assert_eq!(c.threads, 4);
    assert!(c.render().contains("threads = 4"), "{}", c.render());
}

/// `pgha run` parsed from these words.
fn run_args(words: &[&str]) -> RunArgs {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }
    let words = std::iter::once("pgha").chain(words.iter().copied());
    Cli::try_parse_from(words).unwrap().run
}

#[test]
fn flags_win_over_the_file() {
    let dir = auth_dir();
    let path = dir.path().join("pgha.toml");
    std::fs::write(&path, FULL).unwrap();
    let path_text = path.to_str().unwrap();
    // What the file says, with no flag.
    let mut config = parse_full(dir.path());
    run_args(&["--config", path_text])
        .apply(&mut config)
        .unwrap();
    assert_eq!(config.proxy.pool_size, 7);
    assert_eq!(config.nodes.len(), 2);

    let args = run_args(&[
        "--config",
        path_text,
        "--listen",
        "127.0.0.1:7000",
        "--node",
        "x=10.9.9.9:6000",
        "--state-file",
        "/tmp/elsewhere.json",
        "--pool-mode",
        "session",
        "--pool-size",
        "3",
        "--min-pool-size",
        "1",
        "--admin-user",
        "root",
        "--http",
        "127.0.0.1:7001",
        "--server-user",
        "flag_user",
        "--server-password",
        "flag_pw",
    ]);
    let mut config = parse_full(dir.path());
    args.apply(&mut config).unwrap();
    assert_eq!(config.listen, "127.0.0.1:7000".parse().unwrap());
    let nodes: Vec<_> = config
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.port))
        .collect();
    assert_eq!(nodes, [("x", 6000)]);
    assert_eq!(
        config.monitor.state_file,
        Some(PathBuf::from("/tmp/elsewhere.json"))
    );
    assert_eq!(config.proxy.pool_mode, PoolMode::Session);
    assert_eq!(config.proxy.pool_size, 3);
    assert_eq!(config.proxy.min_pool_size, 1);
    assert_eq!(config.proxy.admin_users, ["root"]);
    assert_eq!(config.http, Some("127.0.0.1:7001".parse().unwrap()));
    assert_eq!(config.proxy.server_auth.user.as_deref(), Some("flag_user"));
    assert_eq!(
        config.proxy.server_auth.password.as_deref(),
        Some("flag_pw")
    );
    // What no flag touched stays as the file said.
    assert_eq!(config.proxy.max_client_conn, 300);
    assert_eq!(config.monitor.probe_interval, Duration::from_millis(250));

    // A time limit from the file is replaced, or lifted with "none".
    let mut config = parse_full(dir.path());
    run_args(&["--max-standby-lag-time", "500ms"])
        .apply(&mut config)
        .unwrap();
    assert_eq!(
        config.proxy.max_standby_lag_time,
        Some(Duration::from_millis(500))
    );
    run_args(&["--max-standby-lag-time", "none"])
        .apply(&mut config)
        .unwrap();
    assert_eq!(config.proxy.max_standby_lag_time, None);
    // The standby connect timeout, over the file's.
    run_args(&["--standby-connect-timeout", "250ms"])
        .apply(&mut config)
        .unwrap();
    assert_eq!(
        config.proxy.standby_connect_timeout,
        Duration::from_millis(250)
    );
    run_args(&["--standby-read-timeout", "0s"])
        .apply(&mut config)
        .unwrap();
    assert!(
        config.proxy.standby_read_timeout.is_zero(),
        "zero: no limit"
    );
    // The byte limit likewise, with the file's units.
    run_args(&["--max-standby-lag", "16MB"])
        .apply(&mut config)
        .unwrap();
    assert_eq!(config.proxy.max_standby_lag_bytes, Some(16 << 20));
    run_args(&["--max-standby-lag", "none"])
        .apply(&mut config)
        .unwrap();
    assert_eq!(config.proxy.max_standby_lag_bytes, None);

    // --no-load-balance turns balancing off over a file that has it on.
    let mut config = parse("[proxy]\nload_balance = true\n", &path, &no_env).unwrap();
    run_args(&["--no-load-balance"]).apply(&mut config).unwrap();
    assert!(!config.proxy.load_balance);
}

#[test]
fn tls_flags_replace_the_file_keys_they_name() {
    let dir = auth_dir();
    let other = auth_dir();
    let file = |name: &str| other.path().join(name);
    let text = |name: &str| file(name).to_str().unwrap().to_owned();
    let mut config = parse_full(dir.path());
    run_args(&[
        "--tls-cert",
        &text("proxy.crt"),
        "--tls-key",
        &text("proxy.key"),
        "--server-tls",
        "prefer",
        "--unix-socket-dir",
        "/tmp/pgha-sockets",
    ])
    .apply(&mut config)
    .unwrap();
    assert_eq!(
        config.tls,
        TlsSettings {
            cert_file: Some(file("proxy.crt")),
            key_file: Some(file("proxy.key")),
            // The file's CA went with its verify-full.
            server_mode: ServerTlsMode::Prefer,
            server_ca_file: None,
        }
    );
    assert!(config
        .proxy
        .server_tls
        .as_ref()
        .is_some_and(|t| !t.required()));
    assert!(config.proxy.tls_required, "no flag touched [tls] required");
    assert_eq!(
        config.unix_socket_dir,
        Some(PathBuf::from("/tmp/pgha-sockets"))
    );

    // Another CA alone keeps the file's verify-full.
    let mut config = parse_full(dir.path());
    run_args(&["--server-tls-ca", &text("ca.crt")])
        .apply(&mut config)
        .unwrap();
    assert_eq!(config.tls.server_mode, ServerTlsMode::VerifyFull);
    assert_eq!(config.tls.server_ca_file, Some(file("ca.crt")));
    // `disable` turns the file's server TLS off.
    let mut config = parse_full(dir.path());
    run_args(&["--server-tls", "disable"])
        .apply(&mut config)
        .unwrap();
    assert!(config.proxy.server_tls.is_none());
    assert_eq!(config.tls.server_ca_file, None);

    // --tls-required with the file's certificate.
    let path = dir.path().join("pgha.toml");
    let tls_only = "[tls]\ncert_file = \"proxy.crt\"\nkey_file = \"proxy.key\"\n";
    let mut config = parse(tls_only, &path, &no_env).unwrap();
    assert!(!config.proxy.tls_required);
    run_args(&["--tls-required"]).apply(&mut config).unwrap();
    assert!(config.proxy.tls_required);
    // A CA flag over a mode that checks nothing is refused.
    let mut config = parse("[server_tls]\nmode = \"prefer\"\n", &path, &no_env).unwrap();
    let err = run_args(&["--server-tls-ca", &text("ca.crt")])
        .apply(&mut config)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--server-tls-ca goes with --server-tls verify-full"),
        "{err}"
    );
}

#[test]
fn flags_alone_still_work() {
    let args = run_args(&["--node", "db1=10.0.0.1:5432", "--node", "db2=10.0.0.2:5432"]);
    let config = args.resolve().unwrap();
    assert_eq!(config.nodes.len(), 2);
    assert_eq!(config.listen, DEFAULT_LISTEN);
    assert_eq!(config.proxy.pool_size, ProxyConfig::default().pool_size);
}

#[test]
fn the_shipped_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pgha.toml");
    let config = run_args(&["--config", path.to_str().unwrap()])
        .resolve()
        .unwrap();
    assert_eq!(config.listen, "0.0.0.0:9999".parse().unwrap());
    let topology = config.topology();
    let nodes: Vec<_> = topology
        .nodes()
        .iter()
        .map(|n| (n.id.as_str(), n.role, n.host.as_str(), n.port))
        .collect();
    assert_eq!(
        nodes,
        [
            ("pg16", Role::Primary, "192.168.20.16", 5432),
            ("pg17", Role::Standby, "192.168.20.17", 5432),
        ]
    );
    assert!(config.proxy.load_balance);
    assert_eq!(config.proxy.max_standby_lag_bytes, Some(10_000_000));
    let auth = config.proxy.client_auth.as_ref().unwrap();
    assert_eq!(auth.hba.rules().len(), 4);
    assert!(auth.users.lookup("actorcloud").is_some());
    assert_eq!(config.controller.connect.user, "actorcloud");
}

#[test]
fn check_config_output_reads_back_to_the_same_settings() {
    let dir = auth_dir();
    let first = parse_full(dir.path()).render();
    assert!(
        first.contains("# [server] password: set (not shown)"),
        "{first}"
    );
    assert!(
        !first.contains("from-env") && !first.contains("m0n"),
        "{first}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let again = parse(&first, &elsewhere.path().join("shown.toml"), &no_env)
        .unwrap_or_else(|e| panic!("{e}\n{first}"));
    // Equal but for the header naming the source, and the passwords.
    let body = |text: &str| {
        text.lines()
            .skip_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&again.render()), body(&first));
}
