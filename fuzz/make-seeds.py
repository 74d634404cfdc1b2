#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Seeds are valid messages (so the fuzzer starts deep in each parser) and
known-bad ones (so the replay test covers each refusal). Rerunning rewrites
the seeds and leaves every other file (crashes, fuzzer finds) alone.

The SCRAM seed carries a valid proof: its constants must match
pgha_proxy::fuzzing (SCRAM_PASSWORD, SCRAM_SALT, SCRAM_SERVER_NONCE); the
test `the_scram_seed_is_a_successful_exchange` fails if they drift.
"""

import base64
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

SCRAM_PASSWORD = b"pw"
SCRAM_SALT = b"salt"
SCRAM_SERVER_NONCE = b"pgha-fuzz-nonce-18"
SCRAM_ITERATIONS = 4096

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3_0 = 3 << 16


def be32(n):
    return struct.pack(">I", n & 0xFFFFFFFF)


def packet(code, body=b""):
    """A startup-phase packet: length (counting itself), code, body."""
    return be32(8 + len(body)) + be32(code) + body


def params(*pairs):
    return b"".join(k + b"\0" + v + b"\0" for k, v in pairs) + b"\0"


def msg(tag, body):
    """A tagged message: tag, length (counting itself), body."""
    return tag + be32(4 + len(body)) + body


def query(sql):
    return msg(b"Q", sql + b"\0")


def parse_msg(name, sql, types=()):
    body = name + b"\0" + sql + b"\0" + struct.pack(">h", len(types))
    return msg(b"P", body + b"".join(struct.pack(">I", t) for t in types))


def b64(data):
    return base64.b64encode(data).decode()


def hmac256(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def scram_keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    client_key = hmac256(salted, b"Client Key")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac256(salted, b"Server Key")
    return client_key, stored_key, server_key


def scram_exchange(client_nonce, proof_ok=True):
    """client-first NUL client-final, as the fuzz target splits them."""
    bare = f"n=,r={client_nonce}"
    nonce = client_nonce + b64(SCRAM_SERVER_NONCE)
    server_first = f"r={nonce},s={b64(SCRAM_SALT)},i={SCRAM_ITERATIONS}"
    without_proof = f"c={b64(b'n,,')},r={nonce}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    client_key, stored_key, _ = scram_keys(SCRAM_PASSWORD, SCRAM_SALT, SCRAM_ITERATIONS)
    signature = hmac256(stored_key, auth_message)
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    if not proof_ok:
        proof = bytes([proof[0] ^ 1]) + proof[1:]
    final = f"{without_proof},p={b64(proof)}"
    return f"n,,{bare}".encode() + b"\0" + final.encode()


def verifier(iterations=SCRAM_ITERATIONS, salt=SCRAM_SALT):
    # Keys from 4096 rounds whatever count is written: these seeds are only
    # parsed, never checked against a password.
    _, stored, server = scram_keys(SCRAM_PASSWORD, salt, SCRAM_ITERATIONS)
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def startup_seeds():
    startup = packet(PROTOCOL_3_0, params(
        (b"user", b"alice"), (b"database", b"app"), (b"application_name", b"psql")))
    return {
        "startup-v3-user-database": startup,
        "ssl-then-startup": packet(SSL_REQUEST) + startup,
        "gssenc-then-ssl-then-startup": packet(GSSENC_REQUEST) + packet(SSL_REQUEST) + startup,
        "cancel-request": packet(CANCEL_REQUEST, be32(4242) + be32(0xDEADBEEF)),
        "cancel-request-short": packet(CANCEL_REQUEST, be32(4242)),
        "cancel-request-long": packet(CANCEL_REQUEST, be32(1) + be32(2) + be32(3)),
        "protocol-2.0": packet(2 << 16, b"alice".ljust(32, b"\0") + b"app".ljust(64, b"\0")),
        "protocol-3.2": packet((3 << 16) | 2, params((b"user", b"alice"))),
        "protocol-1234.5679-garbage-code": packet(0x04D2162F, b"\xff\xfe"),
        "length-0": be32(0) + b"\0\0\0\0",
        "length-3": be32(3) + b"\0\0\0",
        "length-7": be32(7) + be32(PROTOCOL_3_0)[:3],
        "length-ffffffff": be32(0xFFFFFFFF) + be32(PROTOCOL_3_0),
        "length-over-max-10001": be32(10001) + be32(PROTOCOL_3_0),
        "length-exactly-max": be32(10000) + be32(PROTOCOL_3_0)
        + (b"user\0" + b"a" * 9985 + b"\0\0"),
        "truncated-body": be32(100) + be32(PROTOCOL_3_0) + b"user\0al",
        "truncated-length": b"\0\0",
        "missing-final-terminator": packet(PROTOCOL_3_0, b"user\0alice\0"),
        "missing-value": packet(PROTOCOL_3_0, b"user\0alice\0database"),
        "no-user": packet(PROTOCOL_3_0, params((b"database", b"app"))),
        "empty-parameters": packet(PROTOCOL_3_0, b"\0"),
        "no-parameters": packet(PROTOCOL_3_0),
        "invalid-utf8-value": packet(PROTOCOL_3_0, params((b"user", b"\xc3\x28\xff"))),
        "invalid-utf8-key": packet(PROTOCOL_3_0, params((b"us\x80er", b"alice"))),
        "empty-user-value": packet(PROTOCOL_3_0, params((b"user", b""), (b"options", b"-c x=1"))),
        "ssl-request-repeated": packet(SSL_REQUEST) * 8,
        "ssl-then-garbage": packet(SSL_REQUEST) + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc",
        "body-only-startup": be32(PROTOCOL_3_0) + params((b"user", b"alice")),
        "body-only-cancel": be32(CANCEL_REQUEST) + be32(1) + be32(2),
        "empty": b"",
    }


def frontend_seeds():
    extended = (
        parse_msg(b"", b"SELECT $1::int4 + 1", (23,))
        + msg(b"B", b"\0\0" + struct.pack(">hh", 1, 0) + struct.pack(">h", 1)
              + be32(1) + b"7" + struct.pack(">hh", 1, 0))
        + msg(b"D", b"P\0")
        + msg(b"E", b"\0" + be32(0))
        + msg(b"S", b"")
    )
    tricky_sql = (
        b"/* pgha:primary */ SELECT $tag$ ; DELETE FROM t; $tag$ AS x, "
        b"'it''s; INSERT' AS y, E'\\'; UPDATE' -- ; DROP TABLE t\n"
        b"FROM \"weird\"\"name\" /* nested /* DELETE */ ; */ WHERE a = $1; SELECT 2"
    )
    return {
        "query-select": query(b"SELECT 1"),
        "query-write": query(b"INSERT INTO t VALUES (1) RETURNING id"),
        "query-dollar-quotes-comments": query(tricky_sql),
        "query-begin-read-only": query(b"BEGIN READ ONLY; SELECT * FROM t; COMMIT"),
        "query-writable-cte": query(b"WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone"),
        "query-write-function": query(b"select nextval('s'), pg_advisory_lock(1)"),
        "query-for-update": query(b"SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED"),
        "query-unicode": query("SELECT 'é', U&\"d\\0061t\\+000061\" FROM ünïcode".encode()),
        "query-only-comments": query(b"-- nothing\n/* at all */ ;;"),
        "query-empty": query(b""),
        "two-queries-one-batch": query(b"SELECT 1") + query(b"SELECT 2"),
        "extended-parse-bind-describe-execute-sync": extended,
        "extended-named-statement": parse_msg(b"stmt1", b"UPDATE t SET a = $1")
        + msg(b"S", b""),
        "copy-data-done": query(b"COPY t FROM STDIN") + msg(b"d", b"1\t2\n") + msg(b"c", b""),
        "function-call": msg(b"F", be32(1598) + struct.pack(">hh", 0, 0) + struct.pack(">h", 0)),
        "query-then-terminate": query(b"SELECT 1") + msg(b"X", b""),
        "length-0": b"Q" + be32(0),
        "length-3": b"Q" + be32(3) + b"\0\0\0",
        "length-ffffffff": b"Q" + be32(0xFFFFFFFF) + b"SELECT 1\0",
        "length-over-1mib": b"Q" + be32(2 << 20) + b"SELECT 1\0",
        "truncated-message": b"Q" + be32(100) + b"SELECT",
        "truncated-header": b"Q\0\0",
        "tag-only": b"Q",
        "query-without-nul": msg(b"Q", b"SELECT 1"),
        "query-embedded-nul": msg(b"Q", b"SELECT 1\0DELETE FROM t\0"),
        "query-invalid-utf8": query(b"SELECT '\xff\xfe' FROM t"),
        "query-split-utf8": query("SELECT 'é'".encode()[:-2]),
        "query-unterminated-dollar": query(b"SELECT $a$ never closed"),
        "query-unterminated-comment": query(b"SELECT 1 /* /* open"),
        "query-unterminated-string": query(b"SELECT 'open"),
        "query-unterminated-identifier": query(b'SELECT "open'),
        "query-dollar-digit": query(b"SELECT $1$ x $1$, $$$, $_a$$_a$"),
        "parse-without-nul": msg(b"P", b"stmt"),
        "parse-name-only": msg(b"P", b"stmt\0"),
        "parse-invalid-utf8": parse_msg(b"", b"SELECT '\x80'"),
        "valid-then-garbage": query(b"SELECT 1") + b"\xff" * 12,
        "empty": b"",
    }


def scram_seeds():
    cnonce = "fyko+d2lbbFgONRv9qkxdawL"
    md5_inner = hashlib.md5(SCRAM_PASSWORD + b"alice").hexdigest().encode()
    md5_response = b"md5" + hashlib.md5(md5_inner + bytes([1, 2, 3, 4])).hexdigest().encode()
    sasl_first = b"n,,n=,r=" + cnonce.encode()
    nonce = cnonce + b64(SCRAM_SERVER_NONCE)
    proof = b64(bytes(32))

    def final(text):
        return b"n,,n=,r=" + cnonce.encode() + b"\0" + text.encode()

    return {
        "exchange-valid-proof": scram_exchange(cnonce),
        "exchange-wrong-proof": scram_exchange(cnonce, proof_ok=False),
        "client-first-only": sasl_first,
        "client-first-y-flag": b"y,,n=,r=" + cnonce.encode() + b"\0"
        + f"c={b64(b'y,,')},r={nonce},p={proof}".encode(),
        "client-first-channel-binding": b"p=tls-server-end-point,,n=,r=abc",
        "client-first-authzid": b"n,a=bob,n=,r=abc",
        "client-first-mandatory-extension": b"n,,m=ext,n=,r=abc",
        "client-first-empty-nonce": b"n,,n=,r=",
        "client-first-nonce-with-space": b"n,,n=,r=ab c",
        "client-first-extension": b"n,,n=alice,r=abc,x=1,y=2",
        "client-first-bad-attribute": b"n,,n=,r=abc,=x,1",
        "client-first-no-gs2": b"n=,r=abc",
        "client-first-gs2-only": b"n,,",
        "client-first-invalid-utf8": b"n,,n=\xff,r=abc",
        "client-first-multibyte-flag": "é,,n=,r=abc".encode(),
        "client-final-wrong-nonce": final(f"c=biws,r={cnonce}XX,p={proof}"),
        "client-final-missing-cbind": final(f"r={nonce},p={proof}"),
        "client-final-wrong-cbind": final(f"c=eSws,r={nonce},p={proof}"),
        "client-final-missing-proof": final(f"c=biws,r={nonce}"),
        "client-final-bad-base64-proof": final(f"c=biws,r={nonce},p=***"),
        "client-final-short-proof": final(f"c=biws,r={nonce},p={b64(bytes(31))}"),
        "client-final-extension": final(f"c=biws,r={nonce},x=1,p={proof}"),
        "client-final-bad-extension": final(f"c=biws,r={nonce},xx,p={proof}"),
        "client-final-invalid-utf8": b"n,,n=,r=" + cnonce.encode() + b"\0c=biws,\xfe",
        "sasl-initial-response": b"SCRAM-SHA-256\0" + be32(len(sasl_first)) + sasl_first,
        "sasl-initial-response-negative-length": b"SCRAM-SHA-256\0\xff\xff\xff\xff" + sasl_first,
        "sasl-initial-response-long-length": b"SCRAM-SHA-256\0" + be32(1 << 30) + sasl_first,
        "sasl-initial-response-plain": b"PLAIN\0" + be32(7) + b"\0a\0pw\0\0",
        "sasl-initial-response-plus": b"SCRAM-SHA-256-PLUS\0" + be32(3) + b"p,,",
        "md5-response-valid": md5_response + b"\0",
        "md5-response-short": b"md5abc\0",
        "cleartext-password": SCRAM_PASSWORD + b"\0",
        "empty": b"",
        "nul-only": b"\0",
    }


HBA = """\
# TYPE    DATABASE     USER         ADDRESS          METHOD
local     all          all                           trust
hostssl   app,reports  alice,bob    10.0.0.0/8       scram-sha-256
host      sameuser     all          ::1/128          md5
host      all          all          192.168.0.0 255.255.0.0  md5
host      "all"        "a""b"       ::ffff:192.168.0.0/120  password
hostnossl all          all          0.0.0.0/0        reject
host      all          all          all              reject
"""


def auth_config_seeds():
    md5_alice = "md5" + hashlib.md5(SCRAM_PASSWORD + b"alice").hexdigest()
    auth_file = (
        "; comment\n# comment\n"
        f'"alice" "{verifier()}"\n'
        f'"bob"   "{md5_alice}"\n'
        '"carol" "plain ""quoted"" password"\n'
    )
    return {
        "hba-valid": HBA.encode(),
        "hba-ipv6-netmask": b"host all all fe80:: ffff:ffff:ffff:ffff:: md5\n",
        "hba-prefix-0": b"host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n",
        "hba-prefix-33": b"host all all 10.0.0.0/33 md5\n",
        "hba-prefix-signed": b"host all all 10.0.0.0/+8 md5\n",
        "hba-prefix-huge": b"host all all ::/99999999999999999999 md5\n",
        "hba-noncontiguous-mask": b"host all all 10.0.0.0 255.0.255.0 md5\n",
        "hba-mixed-family-mask": b"host all all 10.0.0.0 ffff:: md5\n",
        "hba-missing-netmask": b"host all all 10.0.0.0 md5\n",
        "hba-hostname": b"host all all db.example.com md5\n",
        "hba-unsupported": (
            b"hostgssenc all all all md5\nhost samerole all all md5\n"
            b"host all +admins all md5\nhost all @users all md5\n"
            b"host replication all all md5\nlocal all all peer\n"
            b"host all all all md5 clientcert=verify-full\nhost all all samenet md5\n"
        ),
        "hba-missing-columns": b"host\nhost all\nhost all all\nhost all all all\nlocal all all\n",
        "hba-unterminated-quote": b'host "all all all md5\n',
        "hba-empty-list-items": b"host app,,x , all all md5\nhost all,app all all md5\n",
        "hba-method-in-address": b"local all all 10.0.0.0/8 md5\n",
        "hba-comments-whitespace": b"  # only a comment\n\t\n   \r\n#\n",
        "hba-invalid-utf8": b"host all \xff\xfe all md5\n",
        "authfile-valid": auth_file.encode(),
        "authfile-duplicate-user": b'"alice" "a"\n"alice" "b"\n',
        "authfile-unterminated": b'"alice" "secret\n',
        "authfile-no-secret": b'"alice"\n"" "x"\n',
        "authfile-trailing-text": b'"alice" "x" extra\n',
        "authfile-unquoted": b"alice secret\n",
        "authfile-bad-verifier": f'"alice" "{verifier()[:-4]}"\n'.encode(),
        "verifier-valid": verifier().encode(),
        "verifier-iterations-0": verifier(0).encode(),
        "verifier-iterations-max": verifier(10_000_000).encode(),
        "verifier-iterations-over-max": verifier(10_000_001).encode(),
        "verifier-iterations-u32-overflow": verifier(2**32).encode(),
        "verifier-iterations-plus-sign": verifier().replace("$4096:", "$+4096:").encode(),
        "verifier-iterations-leading-zeros": verifier().replace("$4096:", "$0004096:").encode(),
        "verifier-iterations-arabic-digits": verifier().replace("$4096:", "$٤٠٩٦:").encode(),
        "verifier-empty-salt": verifier().replace(f":{b64(SCRAM_SALT)}$", ":$").encode(),
        "verifier-salt-not-base64": verifier().replace(f":{b64(SCRAM_SALT)}$", ":sa!t$").encode(),
        "verifier-salt-unpadded": verifier().replace(f":{b64(SCRAM_SALT)}$", ":c2FsdA$").encode(),
        "verifier-short-key": f"SCRAM-SHA-256$4096:c2FsdA==${b64(bytes(31))}:{b64(bytes(32))}".encode(),
        "verifier-missing-server-key": f"SCRAM-SHA-256$4096:c2FsdA==${b64(bytes(32))}".encode(),
        "verifier-prefix-only": b"SCRAM-SHA-256$",
        "secret-md5-uppercase": ("MD5" + md5_alice[3:].upper()).encode(),
        "secret-md5-mixed-case-hex": ("md5" + md5_alice[3:].upper()).encode(),
        "secret-md5-short": b"md5abcdef",
        "secret-plain-unicode": "pässwörd ✓".encode(),
        "invalid-utf8": b"\xff\xfe\xfd",
        "empty": b"",
    }


def main():
    targets = {
        "startup_packet": startup_seeds(),
        "frontend_messages": frontend_seeds(),
        "scram_exchange": scram_seeds(),
        "auth_config": auth_config_seeds(),
    }
    for target, seeds in targets.items():
        directory = os.path.join(HERE, "corpus", target)
        os.makedirs(directory, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
