//! Each kind of mistake is reported as `file:line:column: what is wrong`.

use std::path::Path;

use super::{auth_dir, no_env, run_args};
use crate::config::parse;

/// The problems found in `text` read as `pgha.toml`, one string each.
fn problems(text: &str) -> Vec<String> {
    match parse(text, Path::new("pgha.toml"), &no_env) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

/// The one problem found in `text`; it must start with `start`.
fn problem(text: &str, start: &str) -> String {
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(start),
        "{:?} should start with {start:?}",
        found[0]
    );
    found[0].clone()
}

const NODE: &str = "\n[[node]]\nname = \"a\"\nhost = \"h\"\n";

#[test]
fn a_misspelt_key_is_named_with_its_place() {
    let text = format!("[proxy]\npool_size = 5\n  pool_szie = 3\n{NODE}");
    let p = problem(
        &text,
        "pgha.toml:3:3: unknown field `pool_szie`, expected one of",
    );
    assert!(p.contains("`pool_size`"), "{p}");
    problem("[proxi]\n", "pgha.toml:1:2: unknown field `proxi`");
    problem(
        &format!("{NODE}data_directory = \"/x\"\n"),
        "pgha.toml:5:1: unknown field `data_directory`",
    );
}

#[test]
fn wrong_values_are_named_with_their_place() {
    problem(
        "[proxy]\npool_size = \"many\"\n",
        "pgha.toml:2:13: invalid type: string \"many\"",
    );
    problem(
        "[proxy]\npool_mode = \"statement\"\n",
        "pgha.toml:2:13: unknown variant `statement`",
    );
    problem(
        "[proxy]\nlisten = \"*:9999\"\n",
        "pgha.toml:2:10: invalid socket address",
    );
    let p = problem("[monitor]\nprobe_interval = 10\n", "pgha.toml:2:18: ");
    assert!(p.contains("write \"10s\" or \"10ms\""), "{p}");
    problem(
        "[monitor]\nprobe_timeout = \"1 fortnight\"\n",
        "pgha.toml:2:17: \"1 fortnight\": unknown unit",
    );
    problem(
        "[proxy]\nmax_standby_lag = \"16 parsecs\"\n",
        "pgha.toml:2:19: \"16 parsecs\": unknown unit",
    );
    problem(
        "[proxy]\nmax_standby_lag_time = \"3 fortnights\"\n",
        "pgha.toml:2:24: \"3 fortnights\": unknown unit",
    );
    let p = problem("[proxy]\nmax_standby_lag_time = 10\n", "pgha.toml:2:24: ");
    assert!(p.contains("write \"10s\" or \"10ms\""), "{p}");
    problem(
        "[proxy]\nmax_standby_lag = -1\n",
        "pgha.toml:2:19: -1 bytes: a size cannot be negative",
    );
    problem(
        "[[node]]\nname = \"a\"\nhost = \"h\"\nport = 70000\n",
        "pgha.toml:4:8: invalid value",
    );
    problem(
        "[[node]]\nname = \"a\"\n",
        "pgha.toml:1:1: missing field `host`",
    );
}

#[test]
fn syntax_errors_are_placed() {
    problem("[proxy]\nlisten = \"0.0.0.0:9999\n", "pgha.toml:2:");
    problem("[proxy\n", "pgha.toml:1:");
}

#[test]
fn values_serde_accepts_but_pgha_cannot_use_are_placed() {
    problem(
        &format!("[proxy]\npool_size = 0\n{NODE}"),
        "pgha.toml:2:13: pool_size must be at least 1",
    );
    problem(
        &format!("[proxy]\nmax_client_conn = 0\n{NODE}"),
        "pgha.toml:2:19: max_client_conn must be at least 1",
    );
    problem(
        &format!("[proxy]\nthreads = 0\n{NODE}"),
        "pgha.toml:2:11: threads must be at least 1",
    );
    problem(
        "[monitor]\nfailures_before_down = 0\n",
        "pgha.toml:2:24: failures_before_down must be at least 1",
    );
    problem(
        "[monitor]\nprobe_interval = \"0s\"\n",
        "pgha.toml:2:18: probe_interval must be longer than 0",
    );
    problem(
        "[[node]]\nname = \"a\"\nhost = \"h\"\nport = 0\n",
        "pgha.toml:4:8: node \"a\": port must not be 0",
    );
    problem(
        "[[node]]\nname = \" \"\nhost = \"h\"\n",
        "pgha.toml:2:8: a node's name must not be empty",
    );
    problem(
        "[[node]]\nname = \"a\"\nhost = \"\"\n",
        "pgha.toml:3:8: node \"a\": host must not be empty",
    );
    let twice = "[[node]]\nname = \"a\"\nhost = \"h1\"\n[[node]]\nname = \"a\"\nhost = \"h2\"\n";
    problem(
        twice,
        "pgha.toml:5:8: node name \"a\" is already used on line 2",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "[proxy]\npool_size = 0\n[monitor]\nfailures_before_down = 0\n[[node]]\nname = \"a\"\nhost = \"h\"\nport = 0\n";
    let found = problems(text);
    let places: Vec<_> = found
        .iter()
        .map(|p| p.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(
        places,
        ["pgha.toml:2:13:", "pgha.toml:4:24:", "pgha.toml:8:8:"],
        "{found:?}"
    );
}

#[test]
fn secrets_come_from_the_file_or_a_named_variable() {
    problem(
        "[server]\npassword = \"x\"\npassword_env = \"PW\"\n",
        "pgha.toml:3:16: give password or password_env, not both",
    );
    problem(
        "[monitor]\nreplication_password_env = \"PGHA_TEST_UNSET\"\n",
        "pgha.toml:2:28: replication_password_env: environment variable PGHA_TEST_UNSET is not set",
    );
}

#[test]
fn no_node_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgha.toml");
    std::fs::write(&path, "[proxy]\npool_size = 5\n").unwrap();
    let err = run_args(&["--config", path.to_str().unwrap()])
        .resolve()
        .unwrap_err();
    let expected = format!("{}: no backend: add a [[node]] section", path.display());
    assert!(err.to_string().starts_with(&expected), "{err}");
    // The same file with --node is complete.
    let args = run_args(&["--config", path.to_str().unwrap(), "--node", "a=h:1"]);
    assert!(args.resolve().is_ok());
    let missing = dir.path().join("nope.toml");
    let err = run_args(&["--config", missing.to_str().unwrap()])
        .resolve()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read it:", missing.display())),
        "{err}"
    );
}

#[test]
fn bad_flags_are_named() {
    for (words, expected) in [
        (
            &["--node", "a=h:1", "--pool-size", "0"][..],
            "--pool-size must be at least 1",
        ),
        (
            &["--node", "a=h:1", "--node", "a=h:2"][..],
            "--node \"a=h:2\": node a is given twice",
        ),
        (
            &["--node", "a"][..],
            "--node \"a\": expected NAME=HOST:PORT",
        ),
        (&[][..], "no backend"),
        (
            &["--node", "a=h:1", "--tls-required"][..],
            "--tls-required needs a certificate",
        ),
        (
            &["--node", "a=h:1", "--server-tls", "verify-full"][..],
            "--server-tls verify-full needs --server-tls-ca",
        ),
        (
            &["--node", "a=h:1", "--server-tls-ca", "/ca.crt"][..],
            "--server-tls-ca goes with --server-tls verify-full",
        ),
    ] {
        let err = run_args(words).resolve().unwrap_err();
        assert!(err.to_string().starts_with(expected), "{err}");
    }
}

/// Parses `text` as `dir/pgha.toml`; the problems with `dir/` removed.
fn problems_in(dir: &Path, text: &str) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    match parse(text, &dir.join("pgha.toml"), &no_env) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| p.to_string().replace(&prefix, ""))
            .collect(),
    }
}

#[test]
fn auth_files_are_read_with_their_own_places() {
    let dir = auth_dir();
    let d = dir.path();
    let found = problems_in(d, "[auth]\nhba_file = \"missing.conf\"\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("pgha.toml:2:12: hba_file missing.conf: No such file"),
        "{found:?}"
    );

    std::fs::write(
        d.join("bad_hba.conf"),
        "host all all 10.0.0.0/8 md5\nhost all all 10.0.0.0/8 ident\n",
    )
    .unwrap();
    std::fs::write(d.join("bad_users.txt"), "\"app\" \"x\"\napp secret\n").unwrap();
    let found = problems_in(
        d,
        "[auth]\nhba_file = \"bad_hba.conf\"\nauth_file = \"bad_users.txt\"\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("bad_hba.conf:2: "), "{found:?}");
    assert!(found[0].contains("ident"), "{found:?}");
    assert!(found[1].starts_with("bad_users.txt:2: "), "{found:?}");

    let found = problems_in(d, "[auth]\nauth_file = \"users.txt\"\n");
    assert!(
        found[0].starts_with("pgha.toml:2:13: auth_file needs hba_file"),
        "{found:?}"
    );
    let found = problems_in(d, "[auth]\nhba_file = \"hba.conf\"\n");
    assert_eq!(
        found,
        ["pgha.toml:2:12: hba.conf:2 asks for a password (md5), but [auth] has no auth_file listing any"]
    );
}

#[test]
fn tls_mistakes_are_placed_at_their_key() {
    let dir = auth_dir();
    let d = dir.path();
    let one = |text: &str, start: &str| {
        let found = problems_in(d, text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(start),
            "{found:?} should start with {start:?}"
        );
    };
    one(
        "[tls]\ncert_file = \"proxy.crt\"\nkey_file = \"missing.key\"\n",
        "pgha.toml:3:12: key_file missing.key: ",
    );
    one(
        "[tls]\ncert_file = \"missing.crt\"\nkey_file = \"proxy.key\"\n",
        "pgha.toml:2:13: cert_file missing.crt: ",
    );
    one(
        "[tls]\ncert_file = \"users.txt\"\nkey_file = \"proxy.key\"\n",
        "pgha.toml:2:13: cert_file users.txt: no certificate in the file",
    );
    one(
        "[tls]\ncert_file = \"proxy.crt\"\n",
        "pgha.toml:2:13: cert_file needs key_file",
    );
    one(
        "[tls]\nrequired = true\n",
        "pgha.toml:2:12: required = true needs cert_file and key_file",
    );
    one(
        "[tls]\nrequired = \"yes\"\n",
        "pgha.toml:2:12: invalid type: string \"yes\", expected a boolean",
    );
    one(
        "[tls]\ncert = \"proxy.crt\"\n",
        "pgha.toml:2:1: unknown field `cert`, expected one of `cert_file`",
    );
    one(
        "[server_tls]\nmode = \"verify-ca\"\n",
        "pgha.toml:2:8: unknown variant `verify-ca`, expected one of `disable`, `prefer`, `require`, `verify-full`",
    );
    one(
        "[server_tls]\nmode = \"verify-full\"\n",
        "pgha.toml:2:8: mode = \"verify-full\" needs ca_file",
    );
    one(
        "[server_tls]\nmode = \"require\"\nca_file = \"ca.crt\"\n",
        "pgha.toml:3:11: ca_file goes with mode = \"verify-full\"",
    );
    one(
        "[server_tls]\nmode = \"verify-full\"\nca_file = \"nope.crt\"\n",
        "pgha.toml:3:11: ca_file nope.crt: ",
    );
}
