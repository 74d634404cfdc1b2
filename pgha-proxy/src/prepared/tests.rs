use super::*;

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    message(b'P', format!("{name}\0{sql}\0\0\0").as_bytes())
}

fn bind(statement: &str) -> Vec<u8> {
    message(b'B', format!("\0{statement}\0\0\0\0\0\0\0").as_bytes())
}

fn target(tag: u8, name: &str) -> Vec<u8> {
    message(tag, format!("S{name}\0").as_bytes())
}

fn batch(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

struct Conn {
    server: ServerStatements,
    unnamed: ServerUnnamed,
    own_names: bool,
    cap: usize,
    tracker: Tracker,
    out: BytesMut,
}

impl Conn {
    fn new() -> Self {
        Conn {
            server: ServerStatements::new(),
            unnamed: None,
            own_names: false,
            cap: 200,
            tracker: Tracker::default(),
            out: BytesMut::new(),
        }
    }

    fn send(
        &mut self,
        registry: &Registry,
        client: &mut ClientStatements,
        batch: &[u8],
    ) -> Vec<(u8, String)> {
        self.out.clear();
        let config = ClassifyConfig::default();
        rewrite(
            batch,
            &mut Rewrite {
                registry,
                classify: &config,
                client,
                server: &mut self.server,
                server_unnamed: &mut self.unnamed,
                own_names: self.own_names,
                cap: self.cap,
                out: &mut self.out,
                tracker: &mut self.tracker,
            },
        );
        frame::messages(&self.out)
            .map(|m| (m[0], String::from_utf8_lossy(frame::body(m)).into_owned()))
            .collect()
    }
}

const SYNC: &[u8] = b"S\0\0\0\x04";
const EXECUTE: &[u8] = b"E\0\0\0\x09\0\0\0\0\0";

#[test]
fn a_named_statement_gets_the_proxys_name_and_is_prepared_once_per_server() {
    let registry = Registry::default();
    let mut client = ClientStatements::new();
    let mut conn = Conn::new();
    let sent = conn.send(
        &registry,
        &mut client,
        &batch(&[
            parse("s1", "SELECT $1"),
            bind("s1"),
            EXECUTE.to_vec(),
            SYNC.to_vec(),
        ]),
    );
    let tags: Vec<u8> = sent.iter().map(|m| m.0).collect();
    assert_eq!(tags, b"CPBES", "close first, then the renamed parse");
    assert!(sent[1].1.starts_with("pgha_1\0SELECT $1"), "{:?}", sent[1]);
    assert!(sent[2].1.starts_with("\0pgha_1\0"), "{:?}", sent[2]);

    // The same client binds again in a later transaction on the same
    // server: nothing to prepare.
    let sent = conn.send(
        &registry,
        &mut client,
        &batch(&[bind("s1"), EXECUTE.to_vec(), SYNC.to_vec()]),
    );
    assert_eq!(sent.iter().map(|m| m.0).collect::<Vec<_>>(), b"BES");

    // Its next transaction lands on another server: prepared there first.
    let mut other = Conn::new();
    let sent = other.send(
        &registry,
        &mut client,
        &batch(&[bind("s1"), EXECUTE.to_vec(), SYNC.to_vec()]),
    );
    assert_eq!(sent.iter().map(|m| m.0).collect::<Vec<_>>(), b"CPBES");
    assert_eq!(other.tracker.owed_ready(), 1);
}

#[test]
fn a_second_client_preparing_the_same_query_shares_it_and_prepares_it_again() {
    let registry = Registry::default();
    let mut conn = Conn::new();
    let mut first = ClientStatements::new();
    conn.send(
        &registry,
        &mut first,
        &batch(&[parse("a", "SELECT 1"), SYNC.to_vec()]),
    );
    let mut second = ClientStatements::new();
    let sent = conn.send(
        &registry,
        &mut second,
        &batch(&[parse("b", "SELECT 1"), SYNC.to_vec()]),
    );
    // The same server name, prepared again: a schema change since may have
    // left the server's copy failing every Bind.
    assert_eq!(sent.iter().map(|m| m.0).collect::<Vec<_>>(), b"CPS");
    assert!(sent[1].1.starts_with("pgha_1\0"));
    assert_eq!(registry.len(), 1);
    assert!(second.contains_key(&b"b"[..]));
}

#[test]
fn close_forgets_the_clients_name_but_keeps_the_server_statement() {
    let registry = Registry::default();
    let mut client = ClientStatements::new();
    let mut conn = Conn::new();
    conn.send(
        &registry,
        &mut client,
        &batch(&[parse("s1", "SELECT 1"), SYNC.to_vec()]),
    );
    let sent = conn.send(
        &registry,
        &mut client,
        &batch(&[target(b'C', "s1"), SYNC.to_vec()]),
    );
    assert_eq!(sent.iter().map(|m| m.0).collect::<Vec<_>>(), b"S");
    assert!(client.is_empty());
    assert_eq!(conn.server.len(), 1);
}

#[test]
fn unknown_and_unnamed_statements_pass_unchanged() {
    let registry = Registry::default();
    let mut client = ClientStatements::new();
    let mut conn = Conn::new();
    let input = batch(&[
        parse("", "SELECT 1"),
        bind("nope"),
        target(b'D', "nope"),
        SYNC.to_vec(),
    ]);
    conn.send(&registry, &mut client, &input);
    assert_eq!(&conn.out[..], &input[..]);
}

#[test]
fn describe_of_a_statement_the_server_lacks_prepares_it() {
    let registry = Registry::default();
    let mut client = ClientStatements::new();
    let mut conn = Conn::new();
    conn.send(
        &registry,
        &mut client,
        &batch(&[parse("s1", "SELECT 1"), SYNC.to_vec()]),
    );
    let mut other = Conn::new();
    let sent = other.send(
        &registry,
        &mut client,
        &batch(&[target(b'D', "s1"), SYNC.to_vec()]),
    );
    assert_eq!(sent.iter().map(|m| m.0).collect::<Vec<_>>(), b"CPDS");
    assert_eq!(sent[2].1, "Spgha_1\0");
}

#[test]
fn discard_makes_the_server_forget_its_statements() {
    let registry = Registry::default();
    let mut client = ClientStatements::new();
    let mut conn = Conn::new();
    conn.send(
        &registry,
        &mut client,
        &batch(&[parse("s1", "SELECT 1"), SYNC.to_vec()]),
    );
    conn.send(&registry, &mut client, &message(b'Q', b"discard all\0"));
    assert!(conn.server.is_empty());
}

#[test]
fn read_batches_are_recognised_in_both_protocols() {
    let registry = Registry::default();
    let config = ClassifyConfig::default();
    let mut client = ClientStatements::new();
    let mut conn = Conn::new();
    conn.send(
        &registry,
        &mut client,
        &batch(&[
            parse("r", "SELECT 1"),
            parse("w", "DELETE FROM t"),
            SYNC.to_vec(),
        ]),
    );
    let read = |b: &[u8], c: &ClientStatements| batch_route(b, c, &config) == Route::Any;
    assert!(read(&message(b'Q', b"SELECT 1\0"), &client));
    assert!(read(
        &batch(&[
            parse("", "SELECT 1"),
            bind(""),
            EXECUTE.to_vec(),
            SYNC.to_vec()
        ]),
        &client
    ));
    assert!(read(
        &batch(&[bind("r"), EXECUTE.to_vec(), SYNC.to_vec()]),
        &client
    ));
    assert!(!read(
        &batch(&[bind("w"), EXECUTE.to_vec(), SYNC.to_vec()]),
        &client
    ));
    assert!(
        !read(&batch(&[bind("r"), EXECUTE.to_vec()]), &client),
        "no Sync: the transaction may go on"
    );
    assert!(!read(
        &batch(&[
            parse("", "BEGIN"),
            bind(""),
            EXECUTE.to_vec(),
            SYNC.to_vec()
        ]),
        &client
    ));
    assert!(
        !read(
            &batch(&[bind(""), EXECUTE.to_vec(), SYNC.to_vec()]),
            &client
        ),
        "an unnamed statement from before"
    );
    assert!(!read(
        &batch(&[bind("unknown"), EXECUTE.to_vec(), SYNC.to_vec()]),
        &client
    ));
}

#[test]
fn an_unnamed_statement_bound_in_a_later_round_trip_is_prepared_where_it_runs() {
    let registry = Registry::default();
    let mut client = ClientStatements::new();
    let (mut first, mut second) = (Conn::new(), Conn::new());
    let sent = first.send(
        &registry,
        &mut client,
        &batch(&[parse("", "SELECT 1"), SYNC.to_vec()]),
    );
    assert_eq!(sent[0], (b'P', "\0SELECT 1\0\0\0".to_string()));
    assert!(
        registry.is_empty(),
        "unnamed statements stay out of the registry"
    );
    let use_it = batch(&[bind(""), EXECUTE.to_vec(), SYNC.to_vec()]);
    // Another connection: prepared there first, its answer hidden.
    let sent = second.send(&registry, &mut client, &use_it);
    let tags: Vec<u8> = sent.iter().map(|m| m.0).collect();
    assert_eq!(tags, b"PBES");
    assert_eq!(sent[0].1, "\0SELECT 1\0\0\0");
    assert_eq!(
        second.tracker.on_server(b'1', |_| {}),
        crate::tracker::Disposition::Hide
    );
    // The same connection again, or the first one: it has it already.
    for conn in [&mut second, &mut first] {
        let sent = conn.send(&registry, &mut client, &use_it);
        assert_eq!(sent.iter().map(|m| m.0).collect::<Vec<_>>(), b"BES");
    }
    // A new unnamed Parse replaces it; the first connection lacks that one.
    second.send(
        &registry,
        &mut client,
        &batch(&[parse("", "SELECT 2"), SYNC.to_vec()]),
    );
    let sent = first.send(&registry, &mut client, &use_it);
    assert_eq!(sent[0], (b'P', "\0SELECT 2\0\0\0".to_string()));
    let described = first.send(&registry, &mut client, &target(b'D', ""));
    assert_eq!(described.len(), 1, "already there");
    // A simple query drops it, on the server and for the client: a Bind
    // after it gets the server's own error, as without the proxy.
    first.send(&registry, &mut client, &message(b'Q', b"SELECT 3\0"));
    let sent = second.send(&registry, &mut client, &use_it);
    assert_eq!(sent.iter().map(|m| m.0).collect::<Vec<_>>(), b"BES");
}

#[test]
fn a_sessions_own_connection_gets_the_clients_names_unchanged() {
    let registry = Registry::default();
    let mut client = ClientStatements::new();
    let mut own = Conn::new();
    own.own_names = true;
    let sent = own.send(
        &registry,
        &mut client,
        &batch(&[
            parse("s1", "SELECT 1"),
            bind("s1"),
            EXECUTE.to_vec(),
            SYNC.to_vec(),
        ]),
    );
    let tags: Vec<u8> = sent.iter().map(|m| m.0).collect();
    assert_eq!(tags, b"PBES", "nothing added");
    assert!(sent[0].1.starts_with("s1\0"), "{:?}", sent[0]);
    assert!(sent[1].1.contains("\0s1\0"), "{:?}", sent[1]);
    // A standby connection (shared) still gets the proxy's name, prepared
    // first.
    let mut shared = Conn::new();
    let sent = shared.send(
        &registry,
        &mut client,
        &batch(&[bind("s1"), EXECUTE.to_vec(), SYNC.to_vec()]),
    );
    assert_eq!(sent.iter().map(|m| m.0).collect::<Vec<_>>(), b"CPBES");
    assert!(sent[1].1.starts_with("pgha_1\0"));
    // Close reaches the server and forgets the client's name.
    let sent = own.send(&registry, &mut client, &target(b'C', "s1"));
    assert_eq!(sent, [(b'C', "Ss1\0".to_string())]);
    assert!(!client.contains_key(&b"s1"[..]));
}

#[test]
fn a_shared_connection_keeps_at_most_its_cap_closing_the_least_recently_used() {
    let registry = Registry::default();
    let mut client = ClientStatements::new();
    let mut conn = Conn::new();
    conn.cap = 2;
    for name in ["a", "b"] {
        conn.send(
            &registry,
            &mut client,
            &batch(&[parse(name, &format!("SELECT '{name}'")), SYNC.to_vec()]),
        );
    }
    // "a" used again: "b" is now the least recently used.
    conn.send(
        &registry,
        &mut client,
        &batch(&[bind("a"), EXECUTE.to_vec(), SYNC.to_vec()]),
    );
    let sent = conn.send(
        &registry,
        &mut client,
        &batch(&[parse("c", "SELECT 'c'"), SYNC.to_vec()]),
    );
    assert_eq!(
        sent[0],
        (b'C', "Spgha_2\0".to_string()),
        "b closed on the server"
    );
    assert_eq!(conn.server.len(), 2);
    // b still works for its client: prepared again, something else closed.
    let sent = conn.send(
        &registry,
        &mut client,
        &batch(&[bind("b"), EXECUTE.to_vec(), SYNC.to_vec()]),
    );
    let tags: Vec<u8> = sent.iter().map(|m| m.0).collect();
    assert_eq!(tags, b"CCPBES");
    assert_eq!(
        sent[0],
        (b'C', "Spgha_1\0".to_string()),
        "a, now the oldest"
    );
    assert_eq!(conn.server.len(), 2);
}

#[test]
fn the_registry_forgets_statements_no_client_holds() {
    let registry = Registry::default();
    let config = ClassifyConfig::default();
    let a = registry.intern(b"SELECT 1\0\0\0", &config);
    let again = registry.intern(b"SELECT 1\0\0\0", &config);
    assert_eq!(a.id, again.id, "shared while held");
    drop((a, again));
    assert!(registry.is_empty());
    for i in 0..1000 {
        drop(registry.intern(format!("SELECT {i}\0\0\0").as_bytes(), &config));
    }
    let b = registry.intern(b"SELECT 1\0\0\0", &config);
    assert!(
        b.id > 1,
        "an id is never reused: a server may still hold the old name"
    );
    assert_eq!(registry.len(), 1);
}
