use super::*;

fn one(line: &str) -> Result<(String, Value), String> {
    match PgpoolConf::parse(line) {
        Ok(conf) => {
            let entry = conf.entries.into_iter().next().ok_or("no entry")?;
            Ok((entry.key, entry.value))
        }
        Err(errors) => Err(errors
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

#[test]
fn values_are_read_like_pgpool_reads_them() {
    let cases = [
        ("port = 9999", "port", Value::Int(9999)),
        (
            "health_check_period = 10s",
            "health_check_period",
            Value::Word("10s".into()),
        ),
        ("port=9999", "port", Value::Int(9999)),
        ("port 9999", "port", Value::Int(9999)),
        ("x = -1", "x", Value::Int(-1)),
        ("x = 0x1F", "x", Value::Int(31)),
        (
            "backend_weight0 = 0.5",
            "backend_weight0",
            Value::Real("0.5".into()),
        ),
        ("w = 1.e3", "w", Value::Real("1.e3".into())),
        (
            "load_balance_mode = on",
            "load_balance_mode",
            Value::Word("on".into()),
        ),
        (
            "sub = stream # comment",
            "sub",
            Value::Word("stream".into()),
        ),
        (
            "h = '192.168.20.16'",
            "h",
            Value::Quoted("192.168.20.16".into()),
        ),
        (
            "delegate_IP = ''",
            "delegate_IP",
            Value::Quoted(String::new()),
        ),
        (
            "if_up_cmd = 'ip addr add $_IP_$/24 dev ens33 label ens33:0'   # keep",
            "if_up_cmd",
            Value::Quoted("ip addr add $_IP_$/24 dev ens33 label ens33:0".into()),
        ),
        // The text between the quotes is kept as written, as pgpool does.
        (
            r"q = 'it\'s # not a comment'",
            "q",
            Value::Quoted(r"it\'s # not a comment".into()),
        ),
        ("  indented = 1", "indented", Value::Int(1)),
    ];
    for (line, key, value) in cases {
        assert_eq!(one(line), Ok((key.to_owned(), value)), "{line}");
    }
    // A word starts with a letter (a path must be quoted); `1e3` is no
    // number to pgpool's lexer.
    for line in ["path = /var/run/pgpool", "w = 1e3", "w = 1.2.3", "w = ."] {
        assert!(one(line).is_err(), "{line:?} must be refused");
    }
}

#[test]
fn comments_and_blank_lines_are_skipped() {
    let text = "# a comment\n\n   \t\n#port = 1\nport = 9999 # trailing\n";
    let conf = PgpoolConf::parse(text).map_err(|e| format!("{e:?}"));
    let entries = conf.map(|c| c.entries);
    assert_eq!(
        entries,
        Ok(vec![Entry {
            line: 5,
            key: "port".into(),
            value: Value::Int(9999),
        }])
    );
}

#[test]
fn bad_lines_are_reported_with_their_line_numbers() {
    let text = "port = 9999\n\
                listen_addresses = '*\n\
                = 5\n\
                num_init_children =\n\
                ok = 1\n\
                failover_command = /bin/failover.sh %d\n\
                wd_hostname = host one\n\
                5 = x\n";
    let errors = PgpoolConf::parse(text).err().unwrap_or_default();
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3, 4, 6, 7, 8], "{errors:#?}");
    let message = |line: usize| {
        errors
            .iter()
            .find(|e| e.line == line)
            .map(|e| e.message.clone())
            .unwrap_or_default()
    };
    assert!(message(2).contains("no closing quote"), "{}", message(2));
    assert!(
        message(3).contains("expected a parameter name"),
        "{}",
        message(3)
    );
    assert!(
        message(4).contains("num_init_children has no value"),
        "{}",
        message(4)
    );
    assert!(message(6).contains("failover_command"), "{}", message(6));
    assert!(message(7).contains("unexpected \"one\""), "{}", message(7));
}

#[test]
fn the_last_of_a_repeated_key_counts() {
    let conf = PgpoolConf::parse("port = 1\nport = 2\n").unwrap_or_default();
    assert_eq!(
        conf.get("port").map(|e| (e.line, e.value.clone())),
        Some((2, Value::Int(2)))
    );
    assert_eq!(conf.entries.len(), 2);
}

#[test]
fn booleans_take_pgpool_spellings() {
    for (text, expected) in [
        ("on", Some(true)),
        ("ON", Some(true)),
        ("off", Some(false)),
        ("of", Some(false)),
        ("o", None),
        ("true", Some(true)),
        ("t", Some(true)),
        ("ye", Some(true)),
        ("n", Some(false)),
        ("1", Some(true)),
        ("0", Some(false)),
        ("2", None),
        ("maybe", None),
    ] {
        assert_eq!(Value::Word(text.into()).as_bool(), expected, "{text}");
    }
    assert_eq!(Value::Int(1).as_bool(), Some(true));
    assert_eq!(Value::Quoted("off".into()).as_bool(), Some(false));
}

#[test]
fn durations_take_the_settings_unit_or_their_own() {
    let secs = Duration::from_secs(1);
    let d = |v: Value| v.as_duration(secs);
    assert_eq!(d(Value::Int(10)), Some(Duration::from_secs(10)));
    assert_eq!(
        d(Value::Word("500ms".into())),
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        d(Value::Quoted("2min".into())),
        Some(Duration::from_secs(120))
    );
    assert_eq!(d(Value::Word("1h".into())), Some(Duration::from_secs(3600)));
    assert_eq!(
        Value::Int(1500).as_duration(Duration::from_millis(1)),
        Some(Duration::from_millis(1500))
    );
    for bad in [
        Value::Int(-1),
        Value::Word("10 parsecs".into()),
        Value::Word("s".into()),
    ] {
        assert_eq!(d(bad.clone()), None, "{bad}");
    }
}

#[test]
fn numbers_may_be_quoted() {
    assert_eq!(Value::Quoted("5432".into()).as_int(), Some(5432));
    assert_eq!(Value::Quoted("x".into()).as_int(), None);
    assert_eq!(Value::Real("0.5".into()).as_f64(), Some(0.5));
}

/// Every line of up to five characters from an alphabet of the syntax's
/// corner cases: the parser never panics, and what it accepts has a key.
#[test]
fn no_short_line_makes_the_parser_panic() {
    let alphabet = ['a', '=', '\'', '\\', '#', ' ', '1', '-', '.', 'x', 'é', 'e'];
    let mut lines = vec![String::new()];
    for _ in 0..5 {
        let longer: Vec<String> = lines
            .iter()
            .filter(|l| l.chars().count() == lines.last().map_or(0, |x| x.chars().count()))
            .flat_map(|l| alphabet.iter().map(move |c| format!("{l}{c}")))
            .collect();
        for line in &longer {
            if let Ok(conf) = PgpoolConf::parse(line) {
                assert!(conf.entries.iter().all(|e| !e.key.is_empty()), "{line:?}");
            }
        }
        lines.extend(longer);
    }
}
