//! `[watchdog]` and `[vip]`: what they resolve to, and every mistake named
//! at its line.

use std::path::Path;
use std::time::Duration;

use super::*;

const THREE: &str = r#"
[[node]]
name = "a"
host = "198.18.0.10"

[watchdog]
id = 2
state_dir = "wd"
secret = "0123456789abcdef-shared"
lease = "300ms"

[[watchdog.member]]
id = 1
address = "198.18.0.10:7400"
[[watchdog.member]]
id = 2
address = "198.18.0.11:7400"
[[watchdog.member]]
id = 3
address = "198.18.0.12:7400"
witness = true

[vip]
address = "198.18.0.100/24"
interface = "eth0"
"#;

fn parse_text(text: &str) -> Result<RunConfig, ConfigError> {
    parse(text, Path::new("/etc/pgha/pgha.toml"), &no_env)
}

fn errors(text: &str) -> String {
    match parse_text(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_member_of_three_with_a_vip_resolves() {
    let c = parse_text(THREE).unwrap();
    let w = c.watchdog.as_ref().unwrap();
    assert_eq!(w.id, 2);
    assert_eq!(w.members.len(), 3);
    assert_eq!(w.witnesses.iter().copied().collect::<Vec<_>>(), vec![3]);
    assert_eq!(w.listen, "198.18.0.11:7400".parse().unwrap());
    assert_eq!(w.state_dir, Path::new("/etc/pgha/wd"));
    assert_eq!(w.timing.lease, Duration::from_millis(300));
    assert_eq!(w.secret, b"0123456789abcdef-shared");
    let v = c.vip.as_ref().unwrap();
    assert_eq!(v.address.to_string(), "198.18.0.100/24 on eth0");
    assert!(matches!(v.mover, Mover::Netlink));
    assert!(c.remarks().is_empty(), "{:?}", c.remarks());
    // check-config's output reads back (the secret is not written: given
    // again here, as an operator would).
    let shown = c.render();
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    let again = shown.replace(
        "[watchdog]\n",
        "[watchdog]\nsecret = \"0123456789abcdef-shared\"\n",
    );
    let back = parse_text(&again).unwrap();
    assert_eq!(back.watchdog.unwrap().members, w.members);
    assert_eq!(back.vip.unwrap().address, v.address);
}

#[test]
fn the_vip_is_probed_for_before_it_is_taken_unless_told_not_to() {
    let c = parse_text(THREE).unwrap();
    assert!(c.vip.as_ref().unwrap().handover.probe_before_take);
    let text = THREE.replace(
        "interface = \"eth0\"",
        "interface = \"eth0\"\nprobe_before_take = false\nhandover_wait = \"2s\"",
    );
    let c = parse_text(&text).unwrap();
    let h = &c.vip.as_ref().unwrap().handover;
    assert!(!h.probe_before_take);
    assert_eq!(h.wait, Duration::from_secs(2));
    let shown = c.render();
    assert!(shown.contains("probe_before_take = false"), "{shown}");
}

#[test]
fn two_members_without_a_third_are_valid_but_check_config_says_what_that_costs() {
    let text = THREE.replace(
        "[[watchdog.member]]\nid = 3\naddress = \"198.18.0.12:7400\"\nwitness = true\n",
        "",
    );
    let c = parse_text(&text).unwrap();
    let remarks = c.remarks();
    assert_eq!(remarks.len(), 1);
    assert!(remarks[0].contains("witness"), "{remarks:?}");
    assert!(c.render().contains("# note: 2 watchdog members"));
}

#[test]
fn watchdog_mistakes_are_named_at_their_lines() {
    let e = errors(&THREE.replace("id = 2\nstate_dir", "id = 9\nstate_dir"));
    assert!(
        e.contains("pgha.toml:7:") && e.contains("id 9 is not one of"),
        "{e}"
    );
    let e = errors(&THREE.replace("state_dir = \"wd\"\n", ""));
    assert!(e.contains("needs state_dir"), "{e}");
    let e = errors(&THREE.replace("0123456789abcdef-shared", "short"));
    assert!(e.contains(":9:") && e.contains("at least 16 bytes"), "{e}");
    let e = errors(&THREE.replace("secret = ", "secret_env = \"X\"\nsecret = "));
    assert!(e.contains("exactly one of secret"), "{e}");
    let e = errors(&THREE.replace("lease = \"300ms\"", "lease = \"900ms\""));
    assert!(
        e.contains("timers") && e.contains("election_timeout_max"),
        "{e}"
    );
    let e = errors(&THREE.replace("id = 3\n", "id = 1\n"));
    assert!(e.contains("member id 1 is listed twice"), "{e}");
    let e = errors(&THREE.replace("198.18.0.12:7400", "nowhere"));
    assert!(e.contains("member 3") && e.contains("host:port"), "{e}");
}

#[test]
fn vip_mistakes_are_named_at_their_lines() {
    let e = errors(&THREE.replace("198.18.0.100/24", "198.18.0.100"));
    assert!(
        e.contains("pgha.toml:24:") && e.contains("prefix length"),
        "{e}"
    );
    let e = errors(&THREE.replace("198.18.0.100/24", "198.18.0.100/40"));
    assert!(e.contains("not within 1..=32"), "{e}");
    let e = errors(&THREE.replace(
        "interface = \"eth0\"",
        "interface = \"eth0\"\nif_up_cmd = \"ip addr add\"",
    ));
    assert!(e.contains("both if_up_cmd and if_down_cmd"), "{e}");
    let alone = THREE[THREE.find("[vip]").unwrap()..].to_string();
    let e = errors(&format!("[[node]]\nname = \"a\"\nhost = \"h\"\n{alone}"));
    assert!(e.contains("[vip] needs [watchdog]"), "{e}");
}

#[test]
fn the_two_host_example_files_are_valid_and_differ_only_in_member_and_local_node() {
    let env = |name: &str| match name {
        "PGHA_WATCHDOG_SECRET" => Some("an example secret of 32 bytes...".to_string()),
        "PGHA_SERVER_PASSWORD" | "PGHA_REPLICATION_PASSWORD" => Some("pw".to_string()),
        _ => None,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("two-host");
    let mut seen = Vec::new();
    for (file, id, node) in [("pgha-a.toml", 1, "node0"), ("pgha-b.toml", 2, "node1")] {
        let path = dir.join(file);
        // Every host here has a root user; the files name postgres.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("run_as = \"postgres\"", "run_as = \"root\"");
        let c = parse(&text, &path, &env).unwrap_or_else(|e| panic!("{file}: {e}"));
        let w = c.watchdog.as_ref().unwrap();
        assert_eq!(w.id, id, "{file}");
        assert_eq!(w.members.len(), 3);
        assert_eq!(w.witnesses.len(), 1);
        assert!(c.remarks().is_empty(), "{file}: {:?}", c.remarks());
        assert_eq!(c.local.as_ref().unwrap().node.as_str(), node);
        assert_eq!(
            c.vip.as_ref().unwrap().address.to_string(),
            "192.168.20.50/24 on ens33"
        );
        seen.push(c.nodes.len());
    }
    assert_eq!(seen, [2, 2]);
    let path = dir.join("pgha-witness.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = parse(&text, &path, &env).unwrap_or_else(|e| panic!("pgha-witness.toml: {e}"));
    let w = c.watchdog.as_ref().unwrap();
    assert!(
        w.witnesses.contains(&w.id),
        "the witness's own id is the witness"
    );
    assert!(c.vip.is_none() && c.local.is_none());
    assert_eq!(c.nodes.len(), 2);
}
