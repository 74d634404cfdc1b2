//! pgpool's `pool_hba.conf` as pgha's hba file.
//!
//! Both are pg_hba.conf's format, so a line the proxy accepts is copied as
//! it stands. A line it does not accept (`replication` rules, `pam`,
//! `ldap`, `cert`, host names, `+group`…) is kept as a comment under the
//! reason, so the file still shows everything the operator wrote and the
//! order of the remaining rules — which decides — is unchanged.

use pgha_proxy::auth::{HbaRules, Method};

/// The hba file written, and what it left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Converted {
    /// The hba file's text.
    pub text: String,
    /// How many rules it holds.
    pub rules: usize,
    /// `(line, why)` for every line left out.
    pub left_out: Vec<(usize, String)>,
    /// Whether a rule asks clients for a password (then an auth file is
    /// needed).
    pub asks_password: bool,
}

/// Converts the text of a pool_hba.conf.
pub(super) fn convert(text: &str, source: &str) -> Converted {
    let mut out = format!(
        "# pgha hba file, converted from {source} by `pgha import-pgpool`.\n\
         # The first matching line decides; no match rejects. Lines pgha cannot\n\
         # use are kept as comments under the reason.\n"
    );
    let mut left_out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        match HbaRules::parse(line, source) {
            Ok(_) => {
                out.push_str(line);
                out.push('\n');
            }
            Err(errors) => {
                let mut why = errors
                    .into_iter()
                    .map(|e| e.message)
                    .collect::<Vec<_>>()
                    .join("; ");
                if line.split_whitespace().nth(1) == Some("replication") {
                    why.push_str(
                        " — replication connections go to PostgreSQL itself, so this rule \
                         belongs in pg_hba.conf",
                    );
                }
                out.push_str(&format!(
                    "# pgha: line {} left out: {why}\n# {line}\n",
                    i + 1
                ));
                left_out.push((i + 1, why));
            }
        }
    }
    // Each line was checked alone; read the whole file back as pgha will.
    let rules = HbaRules::parse(&out, source).unwrap_or_default();
    let asks_password = rules
        .rules()
        .iter()
        .any(|r| !matches!(r.method(), Method::Trust | Method::Reject));
    Converted {
        rules: rules.rules().len(),
        text: out,
        left_out,
        asks_password,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;

    /// The seed's pool_hba.conf, as its guide writes it.
    const SEED: &str = "\
# IPv4 local connections:
host    all         all         127.0.0.1/32          trust
host    all         all         ::1/128               trust
host    replication    actorcloud    192.168.20.16/24    trust
host    replication    actorcloud    192.168.20.17/24    trust
host    all    all    192.168.20.0/24    md5
host    all    all    0.0.0.0/0    md5
";

    #[test]
    fn the_seeds_rules_carry_over_and_replication_lines_are_explained() {
        let converted = convert(SEED, "pool_hba.conf");
        assert_eq!(converted.rules, 4);
        let lines: Vec<usize> = converted.left_out.iter().map(|l| l.0).collect();
        assert_eq!(lines, vec![4, 5]);
        assert!(
            converted.left_out[0].1.contains("pg_hba.conf"),
            "{:?}",
            converted.left_out
        );
        assert!(converted.asks_password);
        assert!(converted
            .text
            .contains("# host    replication    actorcloud    192.168.20.16/24    trust"));
        // The kept rules are in their order.
        let kept: Vec<&str> = converted
            .text
            .lines()
            .filter(|l| l.starts_with("host"))
            .collect();
        assert_eq!(kept.len(), 4);
        assert!(kept[0].contains("127.0.0.1/32") && kept[3].contains("0.0.0.0/0"));
    }

    #[test]
    fn methods_pgha_does_not_have_are_left_out_with_the_reason() {
        let converted = convert(
            "host all all 10.0.0.0/8 pam\nhost all all 10.0.0.0/8 trust\n",
            "pool_hba.conf",
        );
        assert_eq!(converted.rules, 1);
        assert!(converted.left_out[0].1.contains("`pam` is not supported"));
        assert!(!converted.asks_password);
    }
}
