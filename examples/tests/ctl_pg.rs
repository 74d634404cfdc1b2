//! `pgha-ctl` against the real `pgha` binary and a real primary and
//! standby: its JSON, its exit statuses, its effect.

use pgha_core::testing::PgCluster;
use serde_json::Value;

mod common;
use common::{column, ctl, free_port, Pgha, R};

#[tokio::test]
async fn pgha_ctl_reports_acts_and_exits_with_statuses_scripts_can_use() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let (primary, standby) = (cluster.primary().name(), cluster.standbys()[0].name());
    let dir = tempfile::tempdir()?;
    let pgha = Pgha::with_console(dir.path(), &cluster)?;
    let p = pgha.port.to_string();
    let json = |out: &str| serde_json::from_str::<Value>(out);

    let (out, code) = ctl(&["--port", &p, "status", "--json"]).await?;
    assert_eq!(code, Some(0), "{out}");
    let status = json(&out)?;
    assert_eq!(status["ok"], true);
    assert_eq!(status["primary"], primary);
    assert_eq!(status["term"], 1);
    assert_eq!(status["leader"], "single node");
    assert_eq!(status["vip_holder"], "single node");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(2));

    // Refused by pgha: 1, with the SQLSTATE.
    let (out, code) = ctl(&["--port", &p, "--json", "promote", "nope"]).await?;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(json(&out)?["error"]["sqlstate"], "42704");
    let (out, code) = ctl(&["--port", &p, "--json", "promote", primary]).await?;
    assert_eq!(
        (code, json(&out)?["error"]["sqlstate"].clone()),
        (Some(1), "55000".into())
    );

    // PAUSE holds writes until RESUME; a second PAUSE is refused.
    assert_eq!(ctl(&["--port", &p, "pause"]).await?.1, Some(0));
    let (out, code) = ctl(&["--port", &p, "pause", "--json"]).await?;
    assert_eq!(
        (code, json(&out)?["error"]["sqlstate"].clone()),
        (Some(1), "55000".into())
    );
    let (out, code) = ctl(&["--port", &p, "status", "--json"]).await?;
    assert_eq!(
        (code, json(&out)?["paused"].clone()),
        (Some(0), Value::Bool(true))
    );
    assert_eq!(ctl(&["--port", &p, "resume"]).await?.1, Some(0));

    // detach / attach act and say what was done.
    let (out, code) = ctl(&["--port", &p, "--json", "detach", standby]).await?;
    assert_eq!(code, Some(0), "{out}");
    let detached = json(&out)?;
    assert_eq!(detached["command"], "DETACH");
    assert_eq!(detached["actions"][0]["action"], "detach");
    assert_eq!(detached["actions"][0]["node"], standby);
    let (out, _) = ctl(&["--port", &p, "status", "--json"]).await?;
    let nodes = json(&out)?["nodes"].clone();
    let standby_status = nodes
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == standby))
        .map(|n| n["status"].clone());
    assert_eq!(standby_status, Some("detached".into()));
    let (out, code) = ctl(&["--port", &p, "attach", standby]).await?;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("attach"), "{out}");

    // A login the console refuses is a configuration mistake: 2.
    let (out, code) = ctl(&["--port", &p, "--user", "not_admin", "status", "--json"]).await?;
    assert_eq!(code, Some(2), "{out}");
    assert_eq!(json(&out)?["error"]["sqlstate"], "28000");
    // Bad usage: 2 (clap).
    assert_eq!(ctl(&["--port", &p, "frobnicate"]).await?.1, Some(2));
    // Nobody there: 3.
    let nobody = free_port()?.to_string();
    let (out, code) = ctl(&["--port", &nobody, "status", "--json"]).await?;
    assert_eq!(
        (code, json(&out)?["exit_code"].clone()),
        (Some(3), 3.into())
    );

    // After RESUME clients are served again.
    let client = pgha.client("postgres", "postgres").await?;
    assert_eq!(column(&client, "SELECT 1").await?, ["1"]);
    Ok(())
}

#[tokio::test]
async fn pgha_ctl_switchover_hands_the_writes_to_the_standby_and_says_what_was_done() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let standby = &cluster.standbys()[0];
    let dir = tempfile::tempdir()?;
    let pgha = Pgha::with_console(dir.path(), &cluster)?;
    let p = pgha.port.to_string();
    // The policy hands over only to a standby whose position it knows.
    let mut known = false;
    for _ in 0..300 {
        let (out, _) = ctl(&["--port", &p, "status", "--json"]).await?;
        let status: Value = serde_json::from_str(&out)?;
        known = status["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| !n["lag_bytes"].is_null()));
        if known {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(known, "the monitor never observed both nodes");

    let (out, code) = ctl(&["--port", &p, "--json", "switchover", "--to", standby.name()]).await?;
    assert_eq!(code, Some(0), "{out}");
    let reply: Value = serde_json::from_str(&out)?;
    let actions = reply["actions"].as_array().cloned().unwrap_or_default();
    let promote = actions
        .iter()
        .find(|a| a["action"] == "promote")
        .ok_or("no promote")?;
    assert_eq!(
        (&promote["node"], &promote["term"], &promote["done"]),
        (&standby.name().into(), &2.into(), &true.into())
    );
    assert!(
        actions.iter().all(|a| a["done"].is_boolean()),
        "{actions:?}"
    );

    let (out, _) = ctl(&["--port", &p, "status", "--json"]).await?;
    let status: Value = serde_json::from_str(&out)?;
    assert_eq!(
        (&status["primary"], &status["term"]),
        (&standby.name().into(), &2.into())
    );
    let client = pgha.client("postgres", "postgres").await?;
    let served_by = column(
        &client,
        "CREATE TABLE handed_over (v int); SELECT inet_server_port()",
    )
    .await?;
    assert_eq!(served_by, [standby.port().to_string()]);
    Ok(())
}
