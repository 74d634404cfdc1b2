//! What `pgha-ctl` prints: the console's rows as text, or as one JSON
//! object with stable field names. Pure: rows in, text out.
//!
//! JSON, by command (every object has `"ok"`):
//!
//! * `status`: `{"ok": true, "term": 2, "primary": "db2" | null,
//!   "writes_held": "why" | null, "paused": false, "leader": "…",
//!   "lease": "…", "vip_holder": "…", "nodes": [{"node": "db1", "role":
//!   "primary" | "standby" | "unknown", "status": "up" | "down" |
//!   "detached" | "quarantined" | "rejoining" | "maintenance",
//!   "term_primary": true, "lag_bytes": 0 | null, "lag_us": 0 | null}]}`
//!   (`leader`, `lease` and `vip_holder` say `"single node"` without a
//!   watchdog);
//! * `promote`, `switchover`, `attach`, `detach`: `{"ok": true, "command":
//!   "PROMOTE", "actions": [{"action": "promote", "node": "db2", "term":
//!   2 | null, "done": true, "detail": ""}]}` (an action around the
//!   command may have failed, e.g. the old primary's rejoin: `"done":
//!   false`, the reason in `detail`);
//! * `pause`, `resume`: `{"ok": true, "command": "PAUSE"}`;
//! * `reload`: `{"ok": true, "command": "RELOAD", "settings":
//!   [{"setting": "pool_size", "applied": true, "detail": "20 -> 5"}]}`;
//! * any failure: `{"ok": false, "exit_code": 1, "error": {"sqlstate":
//!   "55000" | null, "message": "…", "detail": "…" | null}}`.

use serde_json::{json, Map, Value};

use super::console::{CtlError, Row};
use super::CtlCommand;

fn get<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    row.iter()
        .find(|(c, _)| c == column)
        .and_then(|(_, v)| v.as_deref())
}

fn int(row: &Row, column: &str) -> Value {
    get(row, column)
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(Value::Null, Value::from)
}

fn boolean(row: &Row, column: &str) -> bool {
    get(row, column) == Some("t")
}

fn text(row: &Row, column: &str) -> Value {
    get(row, column).map_or(Value::Null, Value::from)
}

/// The answer to `command` from the console's `rows`.
pub fn answer(command: &CtlCommand, rows: &[Row], json: bool) -> String {
    let value = match command {
        CtlCommand::Status => status(rows),
        CtlCommand::Pause | CtlCommand::Resume => json!({"ok": true, "command": tag(command)}),
        CtlCommand::Reload => {
            let settings: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "setting": text(r, "setting"),
                        "applied": get(r, "status") == Some("applied"),
                        "detail": text(r, "detail"),
                    })
                })
                .collect();
            json!({"ok": true, "command": "RELOAD", "settings": settings})
        }
        _ => {
            let actions: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "action": text(r, "action"),
                        "node": text(r, "node"),
                        "term": int(r, "term"),
                        "done": get(r, "status") == Some("done"),
                        "detail": text(r, "detail"),
                    })
                })
                .collect();
            json!({"ok": true, "command": tag(command), "actions": actions})
        }
    };
    if json {
        value.to_string()
    } else {
        human(command, &value)
    }
}

/// `pgha-ctl`'s report of a failure.
pub fn error(e: &CtlError, json: bool) -> String {
    if !json {
        return format!("pgha-ctl: {e}");
    }
    let (sqlstate, message, detail) = match e {
        CtlError::Unreachable(why) => (None, format!("cannot reach pgha: {why}"), None),
        CtlError::Login { sqlstate, message } => (Some(sqlstate.clone()), message.clone(), None),
        CtlError::Refused {
            sqlstate,
            message,
            detail,
        } => (Some(sqlstate.clone()), message.clone(), detail.clone()),
    };
    json!({
        "ok": false,
        "exit_code": e.exit() as i32,
        "error": {"sqlstate": sqlstate, "message": message, "detail": detail},
    })
    .to_string()
}

fn tag(command: &CtlCommand) -> &'static str {
    match command {
        CtlCommand::Status => "STATUS",
        CtlCommand::Promote { .. } => "PROMOTE",
        CtlCommand::Switchover { .. } => "SWITCHOVER",
        CtlCommand::Attach { .. } => "ATTACH",
        CtlCommand::Detach { .. } => "DETACH",
        CtlCommand::Pause => "PAUSE",
        CtlCommand::Resume => "RESUME",
        CtlCommand::Reload => "RELOAD",
    }
}

/// `SHOW STATUS` (one row per node, the cluster's fields on each) as one
/// object with a list of nodes.
fn status(rows: &[Row]) -> Value {
    let first = rows.first();
    let cluster = |column: &str| first.map_or(Value::Null, |r| text(r, column));
    let nodes: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "node": text(r, "node"),
                "role": text(r, "role"),
                "status": text(r, "status"),
                "term_primary": boolean(r, "term_primary"),
                "lag_bytes": int(r, "lag_bytes"),
                "lag_us": int(r, "lag_us"),
            })
        })
        .collect();
    let primary = rows
        .iter()
        .find(|r| boolean(r, "term_primary"))
        .map_or(Value::Null, |r| text(r, "node"));
    let mut object = Map::new();
    object.insert("ok".into(), Value::Bool(true));
    object.insert("term".into(), first.map_or(Value::Null, |r| int(r, "term")));
    object.insert("primary".into(), primary);
    object.insert("writes_held".into(), cluster("writes_held"));
    object.insert(
        "paused".into(),
        Value::Bool(first.is_some_and(|r| boolean(r, "paused"))),
    );
    for field in ["leader", "lease", "vip_holder"] {
        object.insert(field.into(), cluster(field));
    }
    object.insert("nodes".into(), Value::Array(nodes));
    Value::Object(object)
}

/// The same answer for people.
fn human(command: &CtlCommand, value: &Value) -> String {
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match command {
        CtlCommand::Status => {
            let mut out = format!(
                "term {}  primary {}  paused {}  writes held: {}\nleader {}  lease {}  VIP holder {}\n\n",
                s(&value["term"]),
                s(&value["primary"]),
                s(&value["paused"]),
                s(&value["writes_held"]),
                s(&value["leader"]),
                s(&value["lease"]),
                s(&value["vip_holder"]),
            );
            out.push_str(&format!(
                "{:<16} {:<8} {:<12} {:>12} {:>12}",
                "NODE", "ROLE", "STATUS", "LAG_BYTES", "LAG_MS"
            ));
            for node in value["nodes"].as_array().into_iter().flatten() {
                let lag_ms = node["lag_us"]
                    .as_i64()
                    .map_or("-".into(), |us| (us / 1000).to_string());
                out.push_str(&format!(
                    "\n{:<16} {:<8} {:<12} {:>12} {:>12}",
                    s(&node["node"]),
                    s(&node["role"]),
                    s(&node["status"]),
                    s(&node["lag_bytes"]),
                    lag_ms,
                ));
            }
            out
        }
        CtlCommand::Pause => "paused: new transactions are held".into(),
        CtlCommand::Resume => "resumed".into(),
        CtlCommand::Reload => {
            let settings = value["settings"].as_array().cloned().unwrap_or_default();
            if settings.is_empty() {
                return "reloaded: nothing changed".into();
            }
            let mut out = String::from("reloaded:");
            for line in settings {
                let state = if line["applied"] == Value::Bool(true) {
                    "applied"
                } else {
                    "NOT applied"
                };
                out.push_str(&format!(
                    "\n  {:<24} {state:<12} {}",
                    s(&line["setting"]),
                    s(&line["detail"])
                ));
            }
            out
        }
        _ => {
            let mut out = format!("{} done:", s(&value["command"]));
            for action in value["actions"].as_array().into_iter().flatten() {
                let failed = if action["done"] == Value::Bool(false) {
                    "FAILED "
                } else {
                    ""
                };
                out.push_str(&format!(
                    "\n  {failed}{} {}",
                    s(&action["action"]),
                    s(&action["node"])
                ));
                if !action["term"].is_null() {
                    out.push_str(&format!(" (term {})", s(&action["term"])));
                }
                let detail = s(&action["detail"]);
                if !detail.is_empty() && detail != "-" {
                    out.push_str(&format!(": {detail}"));
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, Option<&str>)]) -> Row {
        pairs
            .iter()
            .map(|(c, v)| (c.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn status_json_has_the_cluster_fields_once_and_every_node() {
        let node = |name: &str, primary: &str, lag: Option<&str>| {
            row(&[
                ("node", Some(name)),
                (
                    "role",
                    Some(if primary == "t" { "primary" } else { "standby" }),
                ),
                ("status", Some("up")),
                ("term", Some("4")),
                ("term_primary", Some(primary)),
                ("lag_bytes", lag),
                ("lag_us", None),
                ("writes_held", None),
                ("paused", Some("f")),
                ("leader", Some("single node")),
                ("lease", Some("single node")),
                ("vip_holder", Some("single node")),
            ])
        };
        let rows = [node("db1", "f", Some("128")), node("db2", "t", Some("0"))];
        let out = answer(&CtlCommand::Status, &rows, true);
        let v: Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(v["ok"], true);
        assert_eq!(v["term"], 4);
        assert_eq!(v["primary"], "db2");
        assert_eq!(v["writes_held"], Value::Null);
        assert_eq!(v["vip_holder"], "single node");
        assert_eq!(v["nodes"][0]["lag_bytes"], 128);
        assert_eq!(v["nodes"][1]["term_primary"], true);
    }

    #[test]
    fn a_refusal_in_json_carries_its_sqlstate_and_exit_code() {
        let e = CtlError::Refused {
            sqlstate: "55000".into(),
            message: "node \"db1\" cannot be promoted".into(),
            detail: None,
        };
        let v: Value = serde_json::from_str(&error(&e, true)).unwrap_or_default();
        assert_eq!(v["ok"], false);
        assert_eq!(v["exit_code"], 1);
        assert_eq!(v["error"]["sqlstate"], "55000");
        let unreachable = CtlError::Unreachable("connection refused".into());
        let v: Value = serde_json::from_str(&error(&unreachable, true)).unwrap_or_default();
        assert_eq!(v["exit_code"], 3);
        assert_eq!(v["error"]["sqlstate"], Value::Null);
    }

    #[test]
    fn node_names_reach_the_console_as_string_literals() {
        let promote = CtlCommand::Promote {
            node: "db'1".into(),
        };
        assert_eq!(promote.statement(), "PROMOTE 'db''1'");
        let to = CtlCommand::Switchover { to: None };
        assert_eq!(to.statement(), "SWITCHOVER");
    }
}
