//! `TcpProbe` against real loopback sockets (never anything outside
//! 127.0.0.0/8).
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::time::{Duration, Instant};

use pgha_core::{FailureReason, Health, HealthProbe, NodeState, Observation, Role, TcpProbe};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

fn node(role: Role, port: u16) -> NodeState {
    NodeState::new("n", role, "127.0.0.1", port)
}

#[tokio::test]
async fn an_open_port_is_healthy_in_the_role_pgha_believes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();

    for (role, in_recovery) in [
        (Role::Primary, false),
        (Role::Standby, true),
        (Role::Unknown, true),
    ] {
        let seen = TcpProbe
            .probe(&node(role, port), Duration::from_secs(2))
            .await;
        assert_eq!(
            seen,
            Observation::Healthy(Health {
                in_recovery,
                ..Health::default()
            }),
            "{role:?}"
        );
    }
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);

    let seen = TcpProbe
        .probe(&node(Role::Primary, port), Duration::from_secs(2))
        .await;

    assert_eq!(
        seen,
        Observation::Failed {
            reason: FailureReason::ConnectRefused
        }
    );
}

/// A listener that never accepts, with a backlog of 0: once its accept
/// queue is full Linux drops further SYNs, so a connect hangs (the client
/// retransmits after 1 s) — on loopback, deterministically.
#[tokio::test]
async fn a_listener_that_never_answers_times_out() {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let _listener = socket.listen(0).unwrap();
    // Fill the accept queue; keep the connections open.
    let mut held = Vec::new();
    for _ in 0..4 {
        let connect = TcpStream::connect(("127.0.0.1", port));
        match tokio::time::timeout(Duration::from_millis(200), connect).await {
            Ok(Ok(stream)) => held.push(stream),
            _ => break, // the queue is full
        }
    }

    let started = Instant::now();
    let seen = TcpProbe
        .probe(&node(Role::Primary, port), Duration::from_millis(300))
        .await;

    assert_eq!(
        seen,
        Observation::Failed {
            reason: FailureReason::Timeout
        }
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
