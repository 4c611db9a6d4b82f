#!/usr/bin/env python3
"""Readiness probes for the servers started by scripts/infra.

Usage: probe.py {postgres|redis|kafka|cassandra} HOST PORT

Exits 0 when the server answers a real request of its own protocol and prints one line about
it; exits 1 with the reason on stderr otherwise. Standard library only, so the probe works on a
clean machine before any client package is installed:

  postgres   SSLRequest answered with 'S' or 'N' (a PostgreSQL server is listening)
  redis      PING answered with +PONG
  kafka      ApiVersions, then Metadata listing at least one broker and a controller
  cassandra  STARTUP, then the CQL query SELECT release_version FROM system.local
"""

import socket
import struct
import sys

TIMEOUT_SECONDS = 5


class ProbeError(Exception):
    pass


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


class Reader:
    """Big-endian reader over one response body."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ProbeError("response truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def short_string(self):
        """A string prefixed by an int16 length; None when the length is -1."""
        n = self.i16()
        return None if n < 0 else self.take(n).decode("utf-8")


def connect(host, port):
    return socket.create_connection((host, port), timeout=TIMEOUT_SECONDS)


def probe_postgres(host, port):
    with connect(host, port) as sock:
        sock.sendall(struct.pack(">ii", 8, 80877103))  # SSLRequest
        answer = recv_exact(sock, 1)
    if answer not in (b"S", b"N"):
        raise ProbeError("unexpected answer to SSLRequest: %r" % answer)
    return "postgresql answering"


def probe_redis(host, port):
    with connect(host, port) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        answer = sock.recv(64)
    if not answer.startswith(b"+PONG"):
        raise ProbeError("unexpected answer to PING: %r" % answer)
    return "redis PONG"


def kafka_call(sock, correlation_id, api_key, api_version, body):
    client_id = b"piazza-infra-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    request = header + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    r = Reader(recv_exact(sock, size))
    if r.i32() != correlation_id:
        raise ProbeError("kafka answered with a foreign correlation id")
    return r


def probe_kafka(host, port):
    with connect(host, port) as sock:
        # ApiVersions v0 is what every client sends first; it tells which Metadata versions
        # this broker serves (Kafka 4 dropped the oldest ones).
        r = kafka_call(sock, 1, 18, 0, b"")
        error = r.i16()
        if error != 0:
            raise ProbeError("ApiVersions error code %d" % error)
        metadata_range = None
        for _ in range(r.i32()):
            key, lo, hi = r.i16(), r.i16(), r.i16()
            if key == 3:
                metadata_range = (lo, hi)
        if metadata_range is None:
            raise ProbeError("broker lists no Metadata API")
        # Versions 4..8 share one non-flexible layout for what is read here.
        candidates = [v for v in range(8, 3, -1) if metadata_range[0] <= v <= metadata_range[1]]
        if not candidates:
            raise ProbeError("no Metadata version in 4..8 among %s" % (metadata_range,))
        version = candidates[0]
        body = struct.pack(">i?", -1, False)  # all topics, no auto-creation
        if version >= 8:
            body += struct.pack(">??", False, False)
        r = kafka_call(sock, 2, 3, version, body)
        r.i32()  # throttle_time_ms
        brokers = []
        for _ in range(r.i32()):
            node_id, broker_host, broker_port = r.i32(), r.short_string(), r.i32()
            r.short_string()  # rack
            brokers.append("%d@%s:%d" % (node_id, broker_host, broker_port))
        cluster_id = r.short_string()
        controller_id = r.i32()
    if not brokers:
        raise ProbeError("metadata lists no broker")
    if controller_id < 0:
        raise ProbeError("metadata names no controller yet")
    return "kafka cluster %s brokers %s controller %d" % (cluster_id, ",".join(brokers), controller_id)


CQL_VERSION = 0x04
CQL_OPCODE_ERROR, CQL_OPCODE_STARTUP, CQL_OPCODE_READY = 0x00, 0x01, 0x02
CQL_OPCODE_AUTHENTICATE, CQL_OPCODE_QUERY, CQL_OPCODE_RESULT = 0x03, 0x07, 0x08
CQL_CONSISTENCY_ONE = 0x0001
CQL_RESULT_ROWS = 0x0002


def cql_call(sock, stream, opcode, body):
    sock.sendall(struct.pack(">BBhBi", CQL_VERSION, 0, stream, opcode, len(body)) + body)
    _version, _flags, got_stream, got_opcode, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
    if got_stream != stream:
        raise ProbeError("cassandra answered on stream %d, expected %d" % (got_stream, stream))
    r = Reader(recv_exact(sock, length))
    if got_opcode == CQL_OPCODE_ERROR:
        code = r.i32()
        raise ProbeError("cassandra error 0x%04x: %s" % (code, r.short_string()))
    return got_opcode, r


def cql_skip_type(r):
    type_id = r.u16()
    if type_id == 0x0000:  # custom
        r.short_string()
    elif type_id in (0x0020, 0x0022):  # list, set
        cql_skip_type(r)
    elif type_id == 0x0021:  # map
        cql_skip_type(r)
        cql_skip_type(r)
    elif type_id in (0x0030, 0x0031):  # udt, tuple: not needed by this probe
        raise ProbeError("unexpected complex column type 0x%04x" % type_id)


def probe_cassandra(host, port):
    def string(s):
        raw = s.encode("utf-8")
        return struct.pack(">H", len(raw)) + raw

    with connect(host, port) as sock:
        opcode, _ = cql_call(sock, 1, CQL_OPCODE_STARTUP, struct.pack(">H", 1) + string("CQL_VERSION") + string("3.0.0"))
        if opcode == CQL_OPCODE_AUTHENTICATE:
            raise ProbeError("cassandra asks for authentication; the test server must allow all")
        if opcode != CQL_OPCODE_READY:
            raise ProbeError("unexpected answer 0x%02x to STARTUP" % opcode)
        query = b"SELECT release_version FROM system.local"
        body = struct.pack(">i", len(query)) + query + struct.pack(">HB", CQL_CONSISTENCY_ONE, 0)
        opcode, r = cql_call(sock, 2, CQL_OPCODE_QUERY, body)
    if opcode != CQL_OPCODE_RESULT or r.i32() != CQL_RESULT_ROWS:
        raise ProbeError("query did not return rows")
    flags, columns = r.i32(), r.i32()
    if flags & 0x0002:  # has_more_pages: paging state follows
        r.take(r.i32())
    if not flags & 0x0004:  # column specs present
        global_spec = flags & 0x0001
        if global_spec:
            r.short_string()
            r.short_string()
        for _ in range(columns):
            if not global_spec:
                r.short_string()
                r.short_string()
            r.short_string()
            cql_skip_type(r)
    if r.i32() < 1 or columns < 1:
        raise ProbeError("system.local returned no row")
    n = r.i32()
    release = "null" if n < 0 else r.take(n).decode("utf-8")
    return "cassandra release_version %s" % release


PROBES = {
    "postgres": probe_postgres,
    "redis": probe_redis,
    "kafka": probe_kafka,
    "cassandra": probe_cassandra,
}


def main(argv):
    if len(argv) != 4 or argv[1] not in PROBES:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        print(PROBES[argv[1]](argv[2], int(argv[3])))
    except (OSError, ProbeError, struct.error, UnicodeDecodeError) as e:
        print("%s %s:%s: %s" % (argv[1], argv[2], argv[3], e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
