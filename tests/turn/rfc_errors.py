#!/usr/bin/env python3
"""RFC 8489 / RFC 8656 error answers of ringsfu's TURN server, checked by an independent client.

This client is written from the RFCs with Python's standard library only (no code shared with the
server): it encodes requests, signs them with the long-term credential key and verifies the
server's MESSAGE-INTEGRITY and FINGERPRINT itself.

Usage: rfc_errors.py PORT   (the server has users alice/alicepw and bob/bobpw, and 127.0.0.2 in
turn.deniedPeers). Prints one line per check; exits 1 if any fails.
"""
import base64, hashlib, hmac, os, socket, struct, sys, zlib

MAGIC = 0x2112A442
BINDING, ALLOCATE, REFRESH, CREATE_PERMISSION = 0x001, 0x003, 0x004, 0x008
USERNAME, MI, ERROR_CODE, REALM, NONCE = 0x0006, 0x0008, 0x0009, 0x0014, 0x0015
XOR_MAPPED, XOR_PEER, XOR_RELAYED, LIFETIME = 0x0020, 0x0012, 0x0016, 0x000D
REQUESTED_TRANSPORT, FINGERPRINT = 0x0019, 0x8028

port = int(sys.argv[1])
server = ("127.0.0.1", port)
failed = 0


def check(name, ok, detail=""):
    global failed
    print(("ok   " if ok else "FAIL ") + "turn rfc: " + name + ("" if ok else f" ({detail})"))
    if not ok:
        failed = 1


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def xor_addr(ip, p, txid):
    xport = p ^ (MAGIC >> 16)
    xip = struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, xport, xip)


def build(method, attrs, auth=None):
    """A request; auth = (user, password, realm, nonce) adds USERNAME/REALM/NONCE/MI/FINGERPRINT."""
    txid = os.urandom(12)
    body = b"".join(attr(t, v) for t, v in attrs)
    if auth:
        user, pw, realm, nonce = auth
        body += attr(USERNAME, user.encode()) + attr(REALM, realm) + attr(NONCE, nonce)
        key = hashlib.md5(f"{user}:{realm.decode()}:{pw}".encode()).digest()
        # MESSAGE-INTEGRITY covers the header with the length including the MI attribute itself.
        hdr = struct.pack("!HHI", method, len(body) + 24, MAGIC) + txid
        body += attr(MI, hmac.new(key, hdr + body, hashlib.sha1).digest())
    hdr = struct.pack("!HHI", method, len(body) + 8, MAGIC) + txid
    crc = (zlib.crc32(hdr + body) ^ 0x5354554E) & 0xFFFFFFFF
    body += attr(FINGERPRINT, struct.pack("!I", crc))
    return struct.pack("!HHI", method, len(body), MAGIC) + txid + body, txid


def parse(data):
    mtype, length, magic = struct.unpack("!HHI", data[:8])
    assert magic == MAGIC and len(data) == 20 + length, "not a STUN message"
    attrs, off = [], 20
    while off < len(data):
        t, n = struct.unpack("!HH", data[off:off + 4])
        attrs.append((t, data[off + 4:off + 4 + n], off))
        off += 4 + n + (4 - n % 4) % 4
    return mtype, data[8:20], attrs


def get(attrs, t):
    return next((v for a, v, _ in attrs if a == t), None)


def error_code(attrs):
    v = get(attrs, ERROR_CODE)
    return None if v is None else v[2] * 100 + v[3]


def integrity_ok(data, attrs, key):
    for t, v, off in attrs:
        if t == MI:
            hdr = data[:2] + struct.pack("!H", off + 24 - 20) + data[4:20]
            return hmac.compare_digest(v, hmac.new(key, hdr + data[20:off], hashlib.sha1).digest())
    return False


def fingerprint_ok(data, attrs):
    for t, v, off in attrs:
        if t == FINGERPRINT:
            return struct.unpack("!I", v)[0] == (zlib.crc32(data[:off]) ^ 0x5354554E) & 0xFFFFFFFF
    return True  # FINGERPRINT is optional


def ask(sock, method, attrs, auth=None):
    msg, txid = build(method, attrs, auth)
    for _ in range(5):  # UDP: retransmit, generous deadline for a loaded machine
        sock.sendto(msg, server)
        sock.settimeout(2.0)
        try:
            while True:
                data, _ = sock.recvfrom(2048)
                mtype, rtxid, rattrs = parse(data)
                if rtxid == txid:
                    return mtype, rattrs, data
        except socket.timeout:
            continue
    raise SystemExit(f"FAIL turn rfc: no answer from {server}")


sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
transport = [(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))]

# Binding: XOR-MAPPED-ADDRESS is our own address.
mtype, attrs, data = ask(sock, BINDING, [])
mapped = get(attrs, XOR_MAPPED)
me = sock.getsockname()
check("Binding answers our address in XOR-MAPPED-ADDRESS",
      mtype == 0x0101 and mapped is not None and mapped[4:8] == xor_addr(*me, b"")[4:8]
      and struct.unpack("!H", mapped[2:4])[0] ^ (MAGIC >> 16) == me[1], mapped)

# Allocate without credentials: 401 with REALM and NONCE.
mtype, attrs, _ = ask(sock, ALLOCATE, transport)
realm, nonce = get(attrs, REALM), get(attrs, NONCE)
check("unauthenticated Allocate gets 401 with REALM and NONCE",
      mtype == 0x0113 and error_code(attrs) == 401 and realm and nonce, (hex(mtype), error_code(attrs)))

# A wrong password: 401 again (RFC 8489 §9.2.4).
mtype, attrs, _ = ask(sock, ALLOCATE, transport, ("alice", "wrong", realm, nonce))
check("a wrong password gets 401", mtype == 0x0113 and error_code(attrs) == 401, error_code(attrs))

# The right password: success, a relayed address, and the server's MESSAGE-INTEGRITY verifies.
alice_key = hashlib.md5(f"alice:{realm.decode()}:alicepw".encode()).digest()
mtype, attrs, data = ask(sock, ALLOCATE, transport, ("alice", "alicepw", realm, nonce))
check("Allocate with alice's credentials succeeds with XOR-RELAYED-ADDRESS and LIFETIME",
      mtype == 0x0103 and get(attrs, XOR_RELAYED) and get(attrs, LIFETIME), (hex(mtype), error_code(attrs)))
check("the success response's MESSAGE-INTEGRITY verifies with alice's key", integrity_ok(data, attrs, alice_key))
check("the success response's FINGERPRINT is right", fingerprint_ok(data, attrs))

# Another valid user on alice's 5-tuple: 441 Wrong Credentials (RFC 8656 §5).
peer_ok = [(XOR_PEER, xor_addr("127.0.0.1", 9, b""))]
mtype, attrs, _ = ask(sock, CREATE_PERMISSION, peer_ok, ("bob", "bobpw", realm, nonce))
check("bob's request on alice's allocation gets 441", error_code(attrs) == 441, error_code(attrs))

# A second Allocate on the same 5-tuple: 437 Allocation Mismatch.
mtype, attrs, _ = ask(sock, ALLOCATE, transport, ("alice", "alicepw", realm, nonce))
check("a second Allocate on the same 5-tuple gets 437", error_code(attrs) == 437, error_code(attrs))

# A peer in turn.deniedPeers: 403, even though loopback peers are allowed.
peer_denied = [(XOR_PEER, xor_addr("127.0.0.2", 9, b""))]
mtype, attrs, _ = ask(sock, CREATE_PERMISSION, peer_denied, ("alice", "alicepw", realm, nonce))
check("CreatePermission for a denied peer gets 403", error_code(attrs) == 403, error_code(attrs))
mtype, attrs, _ = ask(sock, CREATE_PERMISSION, peer_ok, ("alice", "alicepw", realm, nonce))
check("CreatePermission for an allowed peer succeeds", mtype == 0x0108, (hex(mtype), error_code(attrs)))

# A REST API credential whose expiry is past: 401.
secret = os.environ.get("TURN_SECRET")
if secret:
    user = "1000000000:olduser"
    pw = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()).decode()
    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s2.bind(("127.0.0.1", 0))
    mtype, attrs, _ = ask(s2, ALLOCATE, transport, (user, pw, realm, nonce))
    check("an expired REST credential gets 401", error_code(attrs) == 401, error_code(attrs))

# Refresh with LIFETIME 0 deletes the allocation; a later CreatePermission gets 437.
mtype, attrs, _ = ask(sock, REFRESH, [(LIFETIME, struct.pack("!I", 0))], ("alice", "alicepw", realm, nonce))
check("Refresh with lifetime 0 succeeds", mtype == 0x0104, (hex(mtype), error_code(attrs)))
mtype, attrs, _ = ask(sock, CREATE_PERMISSION, peer_ok, ("alice", "alicepw", realm, nonce))
check("after deletion the 5-tuple has no allocation (437)", error_code(attrs) == 437, error_code(attrs))

sys.exit(failed)
