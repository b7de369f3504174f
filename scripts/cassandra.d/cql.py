#!/usr/bin/env python3
"""Minimal CQL native-protocol (v4) client, standard library only.

  cql.py ping  HOST PORT        exit 0 if the server answers OPTIONS with SUPPORTED
  cql.py query HOST PORT CQL    STARTUP, then QUERY at consistency ONE; prints the rows,
                                one line each, columns separated by tabs

A server that asks for authentication gets the credentials of $DSF_CASSANDRA_USERNAME and
$DSF_CASSANDRA_PASSWORD (SASL PLAIN, as PasswordAuthenticator expects).

Used by scripts/cassandra to tell when Cassandra really answers CQL, and for smoke checks.
"""
import os
import socket
import struct
import sys
import uuid

VERSION = 0x04
OP_ERROR, OP_STARTUP, OP_READY, OP_AUTHENTICATE, OP_OPTIONS, OP_SUPPORTED, OP_QUERY, OP_RESULT = 0, 1, 2, 3, 5, 6, 7, 8
OP_AUTH_RESPONSE, OP_AUTH_SUCCESS = 0x0F, 0x10
CONSISTENCY_ONE = 0x0001


class CqlError(Exception):
    pass


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise CqlError("connection closed by server")
        buf += chunk
    return buf


def request(sock, opcode, body=b"", stream=0):
    sock.sendall(struct.pack(">BBhBi", VERSION, 0, stream, opcode, len(body)) + body)
    version, _flags, _stream, op, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
    if not version & 0x80:
        raise CqlError("not a response frame (version byte 0x%02x)" % version)
    body = recv_exact(sock, length)
    if op == OP_ERROR:
        code = struct.unpack(">i", body[:4])[0]
        msg, _ = read_string(body, 4)
        raise CqlError("server error 0x%04x: %s" % (code, msg))
    return op, body


def read_short(b, i):
    return struct.unpack(">H", b[i:i + 2])[0], i + 2


def read_int(b, i):
    return struct.unpack(">i", b[i:i + 4])[0], i + 4


def read_string(b, i):
    n, i = read_short(b, i)
    return b[i:i + n].decode("utf-8", "replace"), i + n


def read_option(b, i):
    """Returns (type, i); type is an int id, or a tuple for custom and collection types."""
    tid, i = read_short(b, i)
    if tid == 0x0000:
        name, i = read_string(b, i)
        return ("custom", name), i
    if tid in (0x0020, 0x0022):  # list, set
        inner, i = read_option(b, i)
        return (tid, inner), i
    if tid == 0x0021:  # map
        k, i = read_option(b, i)
        v, i = read_option(b, i)
        return (tid, k, v), i
    if tid == 0x0030:  # UDT
        _ks, i = read_string(b, i)
        _name, i = read_string(b, i)
        n, i = read_short(b, i)
        fields = []
        for _ in range(n):
            _f, i = read_string(b, i)
            t, i = read_option(b, i)
            fields.append(t)
        return (tid, fields), i
    if tid == 0x0031:  # tuple
        n, i = read_short(b, i)
        types = []
        for _ in range(n):
            t, i = read_option(b, i)
            types.append(t)
        return (tid, types), i
    return tid, i


def decode(t, v):
    if v is None:
        return "null"
    if t in (0x0001, 0x000D):  # ascii, varchar
        return v.decode("utf-8", "replace")
    if t in (0x0002, 0x0009, 0x0013, 0x0014):  # bigint, int, smallint, tinyint
        return str(int.from_bytes(v, "big", signed=True))
    if t == 0x0004:
        return "true" if v != b"\x00" else "false"
    if t in (0x000C, 0x000F):  # uuid, timeuuid
        return str(uuid.UUID(bytes=v))
    if t == 0x0010 and len(v) in (4, 16):  # inet
        return socket.inet_ntop(socket.AF_INET if len(v) == 4 else socket.AF_INET6, v)
    return "0x" + v.hex()


def connect(host, port, timeout):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def ping(host, port):
    try:
        with connect(host, port, 2) as sock:
            op, _ = request(sock, OP_OPTIONS)
            return 0 if op == OP_SUPPORTED else 1
    except (OSError, CqlError, struct.error):
        return 1


def query(host, port, cql):
    with connect(host, port, 30) as sock:
        startup = struct.pack(">H", 1) + b"".join(
            struct.pack(">H", len(s)) + s for s in (b"CQL_VERSION", b"3.0.0"))
        op, _ = request(sock, OP_STARTUP, startup)
        if op == OP_AUTHENTICATE:
            user = os.environ.get("DSF_CASSANDRA_USERNAME", "")
            if not user:
                raise CqlError("the server requires authentication: set DSF_CASSANDRA_USERNAME and "
                               "DSF_CASSANDRA_PASSWORD")
            token = b"\0" + user.encode() + b"\0" + os.environ.get("DSF_CASSANDRA_PASSWORD", "").encode()
            op, _ = request(sock, OP_AUTH_RESPONSE, struct.pack(">i", len(token)) + token)
            if op != OP_AUTH_SUCCESS:
                raise CqlError("AUTH_RESPONSE answered with opcode %d" % op)
        elif op != OP_READY:
            raise CqlError("STARTUP answered with opcode %d" % op)
        q = cql.encode("utf-8")
        body = struct.pack(">i", len(q)) + q + struct.pack(">HB", CONSISTENCY_ONE, 0)
        op, body = request(sock, OP_QUERY, body, stream=1)
        if op != OP_RESULT:
            raise CqlError("QUERY answered with opcode %d" % op)
        kind, i = read_int(body, 0)
        if kind != 0x0002:  # Void, SetKeyspace, Prepared, SchemaChange
            print({1: "void", 3: "keyspace set", 5: "schema changed"}.get(kind, "result kind %d" % kind))
            return 0
        flags, i = read_int(body, i)
        ncols, i = read_int(body, i)
        if flags & 0x0002:  # has more pages: skip the paging state
            n, i = read_int(body, i)
            i += max(n, 0)
        types = []
        if not flags & 0x0004:  # metadata present
            if flags & 0x0001:  # global table spec
                _, i = read_string(body, i)
                _, i = read_string(body, i)
            for _ in range(ncols):
                if not flags & 0x0001:
                    _, i = read_string(body, i)
                    _, i = read_string(body, i)
                _name, i = read_string(body, i)
                t, i = read_option(body, i)
                types.append(t)
        nrows, i = read_int(body, i)
        for _ in range(nrows):
            cells = []
            for c in range(ncols):
                n, i = read_int(body, i)
                v = None if n < 0 else body[i:i + n]
                i += max(n, 0)
                cells.append(decode(types[c] if types else None, v))
            print("\t".join(cells))
        return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "ping":
        return ping(argv[2], int(argv[3]))
    if len(argv) == 5 and argv[1] == "query":
        try:
            return query(argv[2], int(argv[3]), argv[4])
        except (OSError, CqlError, struct.error) as e:
            print("cql: %s" % e, file=sys.stderr)
            return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
