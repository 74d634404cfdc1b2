#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn secret_kinds_are_recognised() {
    let v = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(Secret::parse(v).unwrap().kind(), "SCRAM-SHA-256");
    assert_eq!(
        Secret::parse("md5A3556571E93B0D20722BA62BE61E8C2D").unwrap(),
        Secret::Md5("md5a3556571e93b0d20722ba62be61e8c2d".into())
    );
    // Not 32 hex digits: a plaintext password that happens to start with md5.
    assert_eq!(
        Secret::parse("md5short").unwrap(),
        Secret::Plain("md5short".into())
    );
    assert!(Secret::parse("").is_err());
    // A malformed verifier is an error, not a plaintext password.
    assert!(Secret::parse("SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA").is_err());
}

#[test]
fn secret_debug_redacts() {
    let s = Secret::Plain("hunter2".into());
    assert!(!format!("{s:?}").contains("hunter2"));
    let v = ScramVerifier::derive(b"hunter2", b"salt", 1);
    let text = format!("{:?}", Secret::Scram(v.clone()));
    assert!(!text.contains(&v.to_string()[20..]));
}

#[test]
fn sqlstates_do_not_tell_unknown_users_from_wrong_passwords() {
    let wrong = AuthError::WrongPassword {
        user: "alice".into(),
    };
    let unknown = AuthError::UnknownUser {
        user: "alice".into(),
    };
    let unusable = AuthError::SecretUnusable {
        user: "alice".into(),
        secret_kind: "md5",
        method: Method::ScramSha256,
    };
    for e in [&wrong, &unknown, &unusable] {
        assert_eq!(e.sqlstate(), "28P01");
        assert_eq!(e.client_message(), wrong.client_message());
    }
    let rejected = AuthError::Rejected {
        user: "a".into(),
        database: "d".into(),
        line: Some(3),
    };
    assert_eq!(rejected.sqlstate(), "28000");
    assert_eq!(
        AuthError::Unsupported { what: "x".into() }.sqlstate(),
        "28000"
    );
    assert_eq!(AuthError::protocol("x").sqlstate(), "08P01");
}

#[test]
fn md5_rule_upgrades_to_scram_for_scram_secrets() {
    let scram = Secret::Scram(ScramVerifier::derive(b"pw", b"salt", 1));
    assert_eq!(Method::Md5.resolve(Some(&scram)), Method::ScramSha256);
    assert_eq!(
        Method::Md5.resolve(Some(&Secret::Plain("pw".into()))),
        Method::Md5
    );
    assert_eq!(Method::Md5.resolve(None), Method::Md5);
    assert_eq!(
        Method::ScramSha256.resolve(Some(&Secret::Md5("md5".into()))),
        Method::ScramSha256
    );
}

#[test]
fn method_keywords_round_trip() {
    for m in [
        Method::Trust,
        Method::Reject,
        Method::Md5,
        Method::ScramSha256,
        Method::Password,
    ] {
        assert_eq!(Method::from_keyword(m.as_str()), Some(m));
    }
    assert_eq!(Method::from_keyword("peer"), None);
}
