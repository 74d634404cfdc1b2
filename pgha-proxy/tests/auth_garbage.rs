//! Client authentication parsers and state machines fed garbage: they must
//! fail cleanly, never panic.
#![allow(clippy::unwrap_used)]

use pgha_proxy::auth::{
    verify_cleartext, AuthFile, HbaRules, Md5Challenge, ScramServer, ScramVerifier, Secret,
};

const NONCE: &[u8] = b"server-nonce-18byt";
const SALT: &[u8] = b"fresh-salt-16byt";

fn testdata(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn users() -> AuthFile {
    AuthFile::parse(&testdata("auth_users.txt"), "auth_users.txt").unwrap()
}

// ---------------------------------------------------------------- garbage

/// xorshift64*: a tiny seeded generator so a failing case can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
    /// Random bytes, biased towards the characters the parsers care about.
    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        const INTERESTING: &[u8] = b",=nyprcsmai$:\"#/ \n\t0123456789abcdefABC+";
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| match self.below(3) {
                0 => INTERESTING[self.below(INTERESTING.len())],
                _ => (self.next() & 0xff) as u8,
            })
            .collect()
    }
    /// `base` with a few bytes changed, inserted or removed.
    fn mutate(&mut self, base: &[u8]) -> Vec<u8> {
        let mut v = base.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(v.len() + 1);
            match self.below(3) {
                0 if at < v.len() => v[at] = (self.next() & 0xff) as u8,
                1 => v.insert(at, (self.next() & 0x7f) as u8),
                _ if at < v.len() => {
                    v.remove(at);
                }
                _ => {}
            }
        }
        v
    }
}

#[test]
fn garbage_never_panics() {
    let seed = std::env::var("PGHA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    eprintln!("garbage_never_panics seed {seed} (replay with PGHA_FUZZ_SEED={seed})");
    let mut rng = XorShift(seed);
    let users = users();
    let alice = users.lookup("alice").unwrap();
    let hba = testdata("hba.conf");
    let userlist = testdata("auth_users.txt");
    let good_first = b"n,,n=,r=abcdef";
    let good_final = format!(
        "c=biws,r=abcdef{},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        base64_of(NONCE)
    );
    let Secret::Scram(verifier) = alice.clone() else {
        panic!()
    };
    // Cheap verifier so thousands of client-final messages stay fast.
    let cheap = ScramVerifier::derive(b"pw", SALT, 1);

    for _ in 0..3000 {
        // SCRAM client-first: random and mutated.
        let msg = if rng.below(2) == 0 {
            rng.bytes(64)
        } else {
            rng.mutate(good_first)
        };
        let mut server = ScramServer::new("alice", &cheap, NONCE);
        let _ = server.handle_client_first(&msg);
        // SCRAM client-final after a good client-first.
        let mut server = ScramServer::new("alice", &cheap, NONCE);
        server.handle_client_first(good_first).unwrap();
        let msg = if rng.below(2) == 0 {
            rng.bytes(128)
        } else {
            rng.mutate(good_final.as_bytes())
        };
        let fin = server.handle_client_final(&msg);
        // Nobody forges a proof by accident.
        assert!(fin.is_err(), "seed {seed}: {msg:?} was accepted");

        // hba and auth-file text: random lines and mutated real files.
        let text = if rng.below(2) == 0 {
            rng.bytes(200)
        } else {
            rng.mutate(hba.as_bytes())
        };
        let _ = HbaRules::parse(&String::from_utf8_lossy(&text), "fuzz");
        let text = if rng.below(2) == 0 {
            rng.bytes(200)
        } else {
            rng.mutate(userlist.as_bytes())
        };
        let _ = AuthFile::parse(&String::from_utf8_lossy(&text), "fuzz");
        let _ = Secret::parse(&String::from_utf8_lossy(
            &rng.mutate(verifier.to_string().as_bytes()),
        ));

        // md5 and cleartext responses.
        let resp = rng.bytes(40);
        assert!(Md5Challenge::new([1, 2, 3, 4])
            .verify(&Secret::Plain("x".into()), "u", &resp)
            .is_err());
        assert!(
            verify_cleartext(&Secret::Scram(cheap.clone()), "u", &resp).is_err() || resp == b"pw"
        );
    }
}

#[test]
fn garbage_after_garbage_keeps_failing_cleanly() {
    // One server fed many random messages in a row must not panic either.
    let mut rng = XorShift(42);
    let cheap = ScramVerifier::derive(b"pw", SALT, 1);
    let mut server = ScramServer::new("u", &cheap, NONCE);
    for _ in 0..500 {
        let msg = rng.bytes(64);
        let _ = if rng.below(2) == 0 {
            server.handle_client_first(&msg)
        } else {
            server.handle_client_final(&msg)
        };
    }
}
