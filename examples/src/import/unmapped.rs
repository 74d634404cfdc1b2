//! Every pgpool setting the import does not carry over, grouped by why.

use super::context::{origin, Toml};
use super::pgpool_conf::Entry;

/// A group of pgpool settings with one reason pgha has no counterpart.
struct Family {
    /// Exact keys (a trailing `N` stands for a backend or peer index).
    keys: &'static [&'static str],
    /// Key prefixes.
    prefixes: &'static [&'static str],
    /// Why they are not carried over.
    why: &'static str,
}

const FAMILIES: &[Family] = &[
    Family {
        keys: &[
            "replication_mode",
            "replicate_select",
            "insert_lock",
            "lobj_lock_table",
            "replication_stop_on_mismatch",
            "failover_if_affected_tuples_mismatch",
            "backend_clustering_mode",
            "master_slave_mode",
            "master_slave_sub_mode",
            "native_replication_mode",
            "snapshot_isolation_mode",
            "slony_mode",
        ],
        prefixes: &[],
        why: "Clustering mode. pgha works with PostgreSQL's own streaming replication only (what \
              master_slave_mode = on with sub mode 'stream', or backend_clustering_mode = \
              'streaming_replication', meant). pgpool's native replication mode (sending every \
              write to every server), snapshot isolation, Slony and logical modes have no \
              counterpart.",
    },
    Family {
        keys: &[
            "memory_cache_enabled",
            "white_memqcache_table_list",
            "black_memqcache_table_list",
            "cache_safe_memqcache_table_list",
            "cache_unsafe_memqcache_table_list",
            "clear_memqcache_on_escalation",
        ],
        prefixes: &["memqcache_"],
        why: "In-memory query cache. pgha does not cache query results: a cache in the proxy \
              can serve rows a standby or a new primary no longer has after a failover, and \
              it sees only the writes that pass through it.",
    },
    Family {
        keys: &[
            "relcache_expire",
            "relcache_size",
            "check_temp_table",
            "check_unlogged_table",
            "enable_shared_relcache",
            "relcache_query_target",
            "ignore_leading_white_space",
            "allow_sql_comments",
            "statement_level_load_balance",
            "database_redirect_preference_list",
            "app_name_redirect_preference_list",
            "dml_adaptive_object_relationship_list",
            "prefer_lower_delay_standby",
            "black_query_pattern_list",
            "primary_routing_query_pattern_list",
        ],
        prefixes: &[],
        why: "Query routing details. pgha classifies each statement without asking the \
              catalog (temporary tables are seen through the session's own commands), always \
              ignores leading white space and comments, and balances per session by weight; \
              per-database or per-application redirects and per-statement balancing have no \
              counterpart (a `/* pgha:primary */` comment sends one statement to the \
              primary).",
    },
    Family {
        keys: &[
            "white_function_list",
            "black_function_list",
            "write_function_list",
            "read_only_function_list",
        ],
        prefixes: &[],
        why: "Write functions. pgha sends a read calling a known writing function to the \
              primary: nextval, setval, currval, lastval, advisory locks, pg_notify, \
              set_config and the like are built in; pgha.toml has no key for more yet, and a \
              list of read-only functions is not needed (an unknown function does not make a \
              read a write).",
    },
    Family {
        keys: &[
            "num_init_children",
            "max_pool",
            "child_life_time",
            "child_max_connections",
            "listen_backlog_multiplier",
            "serialize_accept",
            "reserved_connections",
            "process_management_mode",
            "process_management_strategy",
            "min_spare_children",
            "max_spare_children",
            "connection_cache",
            "client_idle_limit",
        ],
        prefixes: &[],
        why: "Process model. pgpool runs one process per client; pgha serves every client \
              from one process, so child processes, their lifetimes and the accept queue have \
              no counterpart. Pooling is always on; idle clients are not disconnected.",
    },
    Family {
        keys: &[
            "pcp_listen_addresses",
            "pcp_port",
            "pcp_socket_dir",
            "pcp_timeout",
        ],
        prefixes: &[],
        why: "PCP. pgha's admin console (database `pgha` on the proxy's port: SHOW NODES, \
              PAUSE…), its HTTP port ([proxy] http: /status, /metrics) and `pgha-ctl` take its \
              place.",
    },
    Family {
        keys: &[
            "log_destination",
            "log_line_prefix",
            "log_connections",
            "log_disconnections",
            "log_hostname",
            "log_statement",
            "log_per_node_statement",
            "log_client_messages",
            "log_standby_delay",
            "log_error_verbosity",
            "client_min_messages",
            "log_min_messages",
            "syslog_facility",
            "syslog_ident",
            "debug_level",
            "logging_collector",
            "log_directory",
            "log_filename",
            "log_file_mode",
            "log_truncate_on_rotation",
            "log_rotation_age",
            "log_rotation_size",
            "log_backend_messages",
            "notice_per_node_statement",
        ],
        prefixes: &[],
        why: "Logging. pgha logs to stderr (journald under systemd) with the level set by \
              RUST_LOG (e.g. RUST_LOG=info); standby delays are in /metrics.",
    },
    Family {
        keys: &["pid_file_name", "logdir", "socket_dir", "wd_ipc_socket_dir"],
        prefixes: &[],
        why: "Files pgpool keeps. systemd tracks pgha's process (no pid file); the term and \
              primary are in [monitor] state_file.",
    },
    Family {
        keys: &[
            "enable_pool_hba",
            "pool_passwd",
            "allow_clear_text_frontend_auth",
            "authentication_timeout",
            "ssl_ca_cert",
            "ssl_ca_cert_dir",
            "ssl_crl_file",
            "ssl_ciphers",
            "ssl_prefer_server_ciphers",
            "ssl_ecdh_curve",
            "ssl_dh_params_file",
            "ssl_passphrase_command",
            "ssl",
            "ssl_cert",
            "ssl_key",
        ],
        prefixes: &[],
        why: "Authentication and TLS details. pgha checks clients against [auth] hba_file and \
              auth_file itself (it never passes a client's password through); TLS uses \
              rustls's cipher choice, and client certificates are not checked.",
    },
    Family {
        keys: &[
            "fail_over_on_backend_error",
            "failover_on_backend_error",
            "search_primary_node_timeout",
            "detach_false_primary",
            "auto_failback",
            "auto_failback_interval",
            "failover_when_quorum_exists",
            "failover_require_consensus",
            "allow_multiple_failover_requests_from_node",
            "enable_consensus_with_half_votes",
            "health_check_test",
            "sr_check_database",
        ],
        prefixes: &[],
        why: "Failover behaviour pgha has built in: a session's error only makes pgha probe \
              the node at once (pg_terminate_backend() must not fail a healthy primary over); \
              a false primary is always fenced and never routed to; a returning standby is \
              attached by itself; with a watchdog, failover always needs a majority, and \
              half the votes is never enough.",
    },
    Family {
        keys: &[
            "recovery_user",
            "recovery_password",
            "recovery_1st_stage_command",
            "recovery_2nd_stage_command",
            "recovery_timeout",
            "client_idle_limit_in_recovery",
        ],
        prefixes: &[],
        why: "Online recovery. pgha rewinds a failed primary (pg_rewind, or a base backup \
              when it cannot) and starts it as a standby by itself ([monitor] auto_rejoin, on \
              by default): no pcp_recovery_node, no recovery scripts.",
    },
    Family {
        keys: &[
            "wd_authkey",
            "wd_interval",
            "wd_lifecheck_method",
            "wd_life_point",
            "wd_lifecheck_query",
            "wd_lifecheck_dbname",
            "wd_lifecheck_user",
            "wd_lifecheck_password",
            "wd_escalation_command",
            "wd_de_escalation_command",
            "wd_monitoring_interfaces_list",
            "ping_path",
            "ifconfig_path",
            "arping_path",
            "if_cmd_path",
            "wd_priority",
            "use_watchdog",
            "wd_hostname",
            "wd_port",
            "trusted_servers",
            "other_pgpool_hostname",
            "other_pgpool_port",
            "other_wd_port",
            "hostname",
            "pgpool_port",
        ],
        prefixes: &["heartbeat_", "wd_heartbeat_"],
        why: "Watchdog internals. pgha's members check each other through Raft heartbeats and \
              leases (no life-check queries, no escalation scripts: the VIP moves with the \
              lease); commands run with the daemon's PATH.",
    },
    Family {
        keys: &["delegate_IP", "if_up_cmd", "if_down_cmd", "arping_cmd"],
        prefixes: &[],
        why: "Virtual IP settings without a delegate_IP or without a watchdog: pgpool brought \
              no virtual IP up, so there is none to carry over.",
    },
    Family {
        keys: &[
            "failover_command",
            "follow_master_command",
            "follow_primary_command",
            "failback_command",
        ],
        prefixes: &[],
        why: "Commands left empty: pgpool ran nothing. pgha promotes with pg_promote() and \
              re-points standbys itself.",
    },
    Family {
        keys: &[
            "parallel_mode",
            "enable_query_cache",
            "system_db_hostname",
            "system_db_port",
            "system_db_dbname",
            "system_db_schema",
            "system_db_user",
            "system_db_password",
            "backend_socket_dir",
            "allow_inet_domain_socket",
        ],
        prefixes: &[],
        why: "Settings of old pgpool versions (parallel query, the system database), with no \
              counterpart.",
    },
];

/// Appends a section listing every entry of `rest`, grouped by reason.
pub(super) fn render(rest: &[&Entry], out: &mut Toml) {
    if rest.is_empty() {
        return;
    }
    out.blank();
    out.comment(
        "──── pgpool settings not carried over, and why ────\n\
         Each line is a setting as pgpool.conf had it (with its line number).",
    );
    let mut unknown = Vec::new();
    let mut groups: Vec<(usize, Vec<&Entry>)> = Vec::new();
    for entry in rest {
        match family_of(&entry.key) {
            Some(i) => match groups.iter_mut().find(|(f, _)| *f == i) {
                Some((_, entries)) => entries.push(entry),
                None => groups.push((i, vec![entry])),
            },
            None => unknown.push(*entry),
        }
    }
    groups.sort_by_key(|(i, _)| *i);
    for (i, entries) in groups {
        out.blank();
        out.comment(FAMILIES[i].why);
        for entry in entries {
            out.comment(&format!("  {}", origin(entry)));
        }
    }
    if !unknown.is_empty() {
        out.blank();
        out.comment(
            "Not known to this import (it knows pgpool-II 3.7 to 4.5): check what they did \
             and whether pgha needs an equivalent.",
        );
        for entry in unknown {
            out.comment(&format!("  {}", origin(entry)));
        }
    }
}

/// Which family `key` belongs to; an index suffix (`health_check_period0`)
/// does not matter.
fn family_of(key: &str) -> Option<usize> {
    let base = key.trim_end_matches(|c: char| c.is_ascii_digit());
    FAMILIES.iter().position(|f| {
        f.keys.iter().any(|k| *k == key || *k == base)
            || f.prefixes.iter().any(|p| key.starts_with(p))
    })
}
