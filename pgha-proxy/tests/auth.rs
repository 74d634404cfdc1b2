//! Client authentication: hba rules from table files, the auth file, SCRAM
//! driven by the real `postgres-protocol` client, md5 and cleartext.
//! (Garbage input: `auth_garbage.rs`.)
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use pgha_proxy::auth::{
    verify_cleartext, AuthError, AuthFile, ClientInfo, HbaRules, Md5Challenge, Method, ScramServer,
    ScramVerifier, Secret,
};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

const NONCE: &[u8] = b"server-nonce-18byt";
const SALT: &[u8] = b"fresh-salt-16byt";

fn testdata(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn users() -> AuthFile {
    AuthFile::parse(&testdata("auth_users.txt"), "auth_users.txt").unwrap()
}

// ---------------------------------------------------------------- hba

#[test]
fn hba_cases_from_table() {
    let rules = HbaRules::parse(&testdata("hba.conf"), "hba.conf").unwrap();
    let cases = testdata("hba_cases.txt");
    let mut n = 0;
    for (i, line) in cases.lines().enumerate() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [addr, ssl, database, user, "=>", method] = words[..] else {
            panic!(
                "hba_cases.txt:{}: expected `ADDRESS ssl|nossl DATABASE USER => METHOD`",
                i + 1
            );
        };
        let client = ClientInfo {
            addr: (addr != "local").then(|| addr.parse::<IpAddr>().unwrap()),
            ssl: ssl == "ssl",
            database,
            user,
        };
        let expected = Method::from_keyword(method).unwrap();
        assert_eq!(
            rules.method_for(&client),
            expected,
            "hba_cases.txt:{}: {line}",
            i + 1
        );
        n += 1;
    }
    assert!(n >= 20, "only {n} cases read");
}

#[test]
fn hba_reports_every_bad_line_with_file_and_line() {
    let text = testdata("hba_errors.conf");
    let errors = HbaRules::parse(&text, "hba_errors.conf").unwrap_err();
    let expected: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| l.split_once("# error: ").map(|(_, e)| (i + 1, e.trim())))
        .collect();
    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), expected.len(), "{got:#?}");
    for ((line, want), err) in expected.iter().zip(&errors) {
        assert_eq!(err.line, *line, "{err}");
        let prefix = format!("hba_errors.conf:{line}: ");
        assert!(err.to_string().starts_with(&prefix), "{err}");
        assert!(
            err.message.contains(want),
            "line {line}: {err} does not mention {want:?}"
        );
    }
}

#[test]
fn hba_empty_rules_reject_everyone() {
    let rules = HbaRules::parse("# nothing\n\n", "empty").unwrap();
    let client = ClientInfo {
        addr: None,
        ssl: false,
        database: "d",
        user: "u",
    };
    assert_eq!(rules.method_for(&client), Method::Reject);
    assert!(rules.rule_for(&client).is_none());
}

#[test]
fn hba_ipv4_mapped_networks_match_ipv4_clients() {
    let rules = HbaRules::parse("host all all ::ffff:192.168.0.0/120 trust\n", "mapped").unwrap();
    let client = |addr: &str| ClientInfo {
        addr: addr.parse().ok(),
        ssl: false,
        database: "d",
        user: "u",
    };
    assert_eq!(rules.method_for(&client("192.168.0.7")), Method::Trust);
    assert_eq!(
        rules.method_for(&client("::ffff:192.168.0.7")),
        Method::Trust
    );
    assert_eq!(rules.method_for(&client("192.168.1.7")), Method::Reject);
}

#[test]
fn hba_first_match_wins_and_reports_its_line() {
    let rules =
        HbaRules::parse("\nhost all all all trust\nhost all all all reject\n", "x").unwrap();
    let client = ClientInfo {
        addr: Some("1.2.3.4".parse().unwrap()),
        ssl: true,
        database: "d",
        user: "u",
    };
    let rule = rules.rule_for(&client).unwrap();
    assert_eq!((rule.line(), rule.method()), (2, Method::Trust));
}

// ---------------------------------------------------------------- auth file

#[test]
fn auth_file_parses_every_kind_of_secret() {
    let users = users();
    assert_eq!(users.len(), 4);
    assert_eq!(users.lookup("alice").unwrap().kind(), "SCRAM-SHA-256");
    assert_eq!(users.lookup("bob").unwrap().kind(), "md5");
    assert_eq!(
        users.lookup("carol"),
        Some(&Secret::Plain("carol-pw".into()))
    );
    assert_eq!(
        users.lookup("o\"neil"),
        Some(&Secret::Plain("pass \"word\"".into()))
    );
    assert_eq!(users.lookup("dave"), None);
}

#[test]
fn auth_file_reports_every_bad_line_without_secrets() {
    let text = testdata("auth_errors.txt");
    let mut file = String::new();
    let mut expected = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match line.split_once("=>") {
            Some((entry, want)) => {
                file.push_str(entry.trim_end());
                expected.push((i + 1, want.trim()));
            }
            None => file.push_str(line),
        }
        file.push('\n');
    }
    let errors = AuthFile::parse(&file, "auth_errors.txt").unwrap_err();
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for ((line, want), err) in expected.iter().zip(&errors) {
        assert_eq!(err.line, *line, "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("auth_errors.txt:{line}: ")),
            "{err}"
        );
        assert!(
            err.message.contains(want),
            "line {line}: {err} does not mention {want:?}"
        );
        assert!(
            !err.message.contains("AAAA") && !err.message.contains("PJ3n"),
            "{err} leaks a key"
        );
    }
}

#[test]
fn scram_verifier_round_trips_through_text() {
    let v = ScramVerifier::derive(b"pw", SALT, 4096);
    let text = v.to_string();
    assert_eq!(ScramVerifier::parse(&text).unwrap(), v);
    // The same format PostgreSQL and postgres-protocol produce.
    let pg = postgres_protocol::password::scram_sha_256(b"pw");
    let parsed = ScramVerifier::parse(&pg).unwrap();
    assert_eq!(parsed.to_string(), pg);
    assert_eq!(parsed.iterations(), 4096);
}

// ---------------------------------------------------------------- SCRAM

/// Runs a whole exchange between the real client and our server.
fn scram_exchange(
    server: &mut ScramServer,
    password: &str,
    cb: ChannelBinding,
) -> Result<(), AuthError> {
    let mut client = ScramSha256::new(password.as_bytes(), cb);
    let server_first = server.handle_client_first(client.message())?;
    client.update(&server_first).unwrap();
    let server_final = server.handle_client_final(client.message())?;
    client
        .finish(&server_final)
        .expect("the client must accept the server signature");
    Ok(())
}

fn alice_server() -> ScramServer {
    let Some(Secret::Scram(v)) = users().lookup("alice").cloned() else {
        panic!("alice has SCRAM")
    };
    ScramServer::new("alice", &v, NONCE)
}

#[test]
fn scram_correct_password_succeeds_and_client_accepts_server() {
    scram_exchange(
        &mut alice_server(),
        "alice-pw",
        ChannelBinding::unsupported(),
    )
    .unwrap(); // n,,
    scram_exchange(
        &mut alice_server(),
        "alice-pw",
        ChannelBinding::unrequested(),
    )
    .unwrap(); // y,,
}

#[test]
fn scram_wrong_password_is_28p01() {
    let err = scram_exchange(
        &mut alice_server(),
        "alice-pW",
        ChannelBinding::unsupported(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        AuthError::WrongPassword {
            user: "alice".into()
        }
    );
    assert_eq!(err.sqlstate(), "28P01");
}

#[test]
fn scram_with_plaintext_secret_derives_a_verifier() {
    let users = users();
    let carol = users.lookup("carol").unwrap();
    let mut server = ScramServer::for_secret("carol", carol, NONCE, SALT).unwrap();
    scram_exchange(&mut server, "carol-pw", ChannelBinding::unsupported()).unwrap();
    let mut server = ScramServer::for_secret("carol", carol, NONCE, SALT).unwrap();
    assert!(scram_exchange(&mut server, "carol", ChannelBinding::unsupported()).is_err());
    // Non-ASCII passwords take postgres-protocol's SASLprep path.
    let secret = Secret::Plain("pässwörd".into());
    let mut server = ScramServer::for_secret("u", &secret, NONCE, SALT).unwrap();
    scram_exchange(&mut server, "pässwörd", ChannelBinding::unsupported()).unwrap();
}

#[test]
fn scram_cannot_run_on_an_md5_secret() {
    let users = users();
    let err =
        ScramServer::for_secret("bob", users.lookup("bob").unwrap(), NONCE, SALT).unwrap_err();
    assert!(matches!(err, AuthError::SecretUnusable { .. }), "{err}");
    assert_eq!(err.sqlstate(), "28P01");
}

#[test]
fn scram_mock_for_unknown_user_looks_like_a_wrong_password() {
    let mut mock = ScramServer::mock("nobody", b"per-proxy mock key", NONCE);
    let err = scram_exchange(&mut mock, "anything", ChannelBinding::unsupported()).unwrap_err();
    assert_eq!(
        err,
        AuthError::UnknownUser {
            user: "nobody".into()
        }
    );
    let wrong = AuthError::WrongPassword {
        user: "nobody".into(),
    };
    assert_eq!(
        (err.sqlstate(), err.client_message()),
        (wrong.sqlstate(), wrong.client_message())
    );
    // The salt is stable for a user, like a real one.
    let a = ScramServer::mock("nobody", b"k", NONCE)
        .handle_client_first(b"n,,n=,r=abc")
        .unwrap();
    let b = ScramServer::mock("nobody", b"k", NONCE)
        .handle_client_first(b"n,,n=,r=abc")
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn scram_server_first_has_nonce_salt_and_iterations() {
    let first = alice_server()
        .handle_client_first(b"n,,n=,r=clientnonce")
        .unwrap();
    let first = String::from_utf8(first).unwrap();
    assert!(first.starts_with("r=clientnonce"), "{first}");
    assert!(
        first.ends_with(",s=cGdoYS10ZXN0LXNhbHQtMQ==,i=4096"),
        "{first}"
    );
}

#[test]
fn scram_malformed_client_first_is_an_error() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "08P01"),
        (b"n", "08P01"),
        (b"n,", "08P01"),
        (b"x,,n=,r=abc", "08P01"),
        (b"n,,", "08P01"),
        (b"n,,n=", "08P01"),
        (b"n,,n=,r=", "08P01"),
        (b"n,,n=,x=abc", "08P01"),
        (b"n,,r=abc", "08P01"),
        (b"n,,n=,r=ab\x01c", "08P01"),
        (b"n,,n=,r=abc,garbage", "08P01"),
        (b"\xff\xfe", "08P01"),
        (b"p=tls-server-end-point,,n=,r=abc", "28000"),
        (b"n,a=admin,n=,r=abc", "28000"),
        (b"n,,m=ext,n=,r=abc", "28000"),
    ];
    for (msg, sqlstate) in cases {
        let err = alice_server().handle_client_first(msg).unwrap_err();
        assert_eq!(
            err.sqlstate(),
            *sqlstate,
            "{:?}: {err}",
            String::from_utf8_lossy(msg)
        );
    }
    // Extensions and a user name are tolerated (PostgreSQL clients send `n=`).
    assert!(alice_server()
        .handle_client_first(b"n,,n=alice,r=abc,x=ext")
        .is_ok());
}

#[test]
fn scram_malformed_client_final_is_an_error() {
    let proof = "p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let nonce = format!("r=abc{}", base64_of(NONCE));
    let cases: Vec<String> = vec![
        String::new(),
        format!("c=biws,{nonce}"),                 // no proof
        format!("c=biws,r=abcWRONG,{proof}"),      // nonce mismatch
        format!("c=eSws,{nonce},{proof}"),         // y,, but client-first said n,,
        format!("c=cD10bHMsLA==,{nonce},{proof}"), // p=…
        format!("{nonce},c=biws,{proof}"),         // wrong order
        format!("c=biws,{nonce},p=AAAA"),          // short proof
        format!("c=biws,{nonce},p=!!!"),           // not base64
        format!("c=biws,{nonce},junk,{proof}"),    // bad extension
        format!("c=biws,{nonce},{proof},x=after"), // proof not last
    ];
    for msg in &cases {
        let mut server = alice_server();
        server.handle_client_first(b"n,,n=,r=abc").unwrap();
        let err = server.handle_client_final(msg.as_bytes()).unwrap_err();
        assert_eq!(err.sqlstate(), "08P01", "{msg}: {err}");
    }
    // A well-formed message with a wrong proof is a wrong password.
    let mut server = alice_server();
    server.handle_client_first(b"n,,n=,r=abc").unwrap();
    let err = server
        .handle_client_final(format!("c=biws,{nonce},{proof}").as_bytes())
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::WrongPassword {
            user: "alice".into()
        }
    );
}

#[test]
fn scram_messages_out_of_order_are_protocol_violations() {
    let mut server = alice_server();
    assert_eq!(
        server
            .handle_client_final(b"c=biws")
            .unwrap_err()
            .sqlstate(),
        "08P01"
    );
    // Once failed, the exchange stays failed.
    assert_eq!(
        server
            .handle_client_first(b"n,,n=,r=abc")
            .unwrap_err()
            .sqlstate(),
        "08P01"
    );

    let mut server = alice_server();
    server.handle_client_first(b"n,,n=,r=abc").unwrap();
    assert_eq!(
        server
            .handle_client_first(b"n,,n=,r=abc")
            .unwrap_err()
            .sqlstate(),
        "08P01"
    );

    // After success, nothing more is accepted.
    let mut server = alice_server();
    scram_exchange(&mut server, "alice-pw", ChannelBinding::unsupported()).unwrap();
    assert!(server.handle_client_final(b"c=biws").is_err());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------- md5 and cleartext

#[test]
fn md5_with_plaintext_and_md5_secrets() {
    let users = users();
    let salt = [0x2a, 0x3d, 0x8f, 0xe0];
    let challenge = Md5Challenge::new(salt);
    for (user, password) in [("bob", "bob-pw"), ("carol", "carol-pw")] {
        let secret = users.lookup(user).unwrap();
        let good = md5_hash(user.as_bytes(), password.as_bytes(), salt);
        challenge.verify(secret, user, good.as_bytes()).unwrap();
        // With the PasswordMessage's trailing NUL.
        challenge
            .verify(secret, user, format!("{good}\0").as_bytes())
            .unwrap();
        let bad = md5_hash(user.as_bytes(), b"guess", salt);
        let err = challenge.verify(secret, user, bad.as_bytes()).unwrap_err();
        assert_eq!(err, AuthError::WrongPassword { user: user.into() });
        // Another salt's answer is no good (replay).
        let replay = md5_hash(user.as_bytes(), password.as_bytes(), [0, 0, 0, 0]);
        assert!(challenge.verify(secret, user, replay.as_bytes()).is_err());
    }
}

#[test]
fn md5_against_a_scram_only_secret_is_a_clear_error() {
    let users = users();
    let err = Md5Challenge::new([1, 2, 3, 4])
        .verify(
            users.lookup("alice").unwrap(),
            "alice",
            b"md500000000000000000000000000000000",
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "user \"alice\" has a SCRAM-SHA-256 secret, which cannot be used for md5"
    );
    assert_eq!(err.sqlstate(), "28P01");
    assert_eq!(
        Method::Md5.resolve(users.lookup("alice")),
        Method::ScramSha256
    );
}

#[test]
fn cleartext_against_every_kind_of_secret() {
    let users = users();
    for (user, password) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ] {
        let secret = users.lookup(user).unwrap();
        verify_cleartext(secret, user, password.as_bytes()).unwrap();
        verify_cleartext(secret, user, format!("{password}\0").as_bytes()).unwrap();
        let err = verify_cleartext(secret, user, b"wrong").unwrap_err();
        assert_eq!(err.sqlstate(), "28P01", "{user}");
    }
}
