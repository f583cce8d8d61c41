#!/usr/bin/env python3
"""
A Workload API client for the stream re-attestation test: it connects, opens a
FetchX509SVID stream, waits for the first message, then forks. The parent (the
process the kernel named as the connecting peer) exits; the child keeps reading
the same stream on the inherited socket and prints, for every message, one JSON
line: {"spiffe_ids": [...]} (read from the protobuf: the SPIFFE IDs are the only
"spiffe://" strings in an X509SVIDResponse besides certificate bytes, which it
skips by reading field 1 of each X509SVID entry).

HTTP/2 and gRPC framing are written by hand (no grpcio on a fresh machine): a
client preface, SETTINGS, one HEADERS frame with HPACK literals (no Huffman, no
indexing), one DATA frame with an empty request, generous WINDOW_UPDATEs.

usage: fork-stream-client.py SOCKET OUT_FILE   (NO_FORK=1: never fork, the control case)
"""
import json
import os
import socket
import struct
import sys

sock_path, out_path = sys.argv[1], sys.argv[2]


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    # "Literal Header Field without Indexing - New Name", lengths < 127, no Huffman
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def varint(b, i):
    shift = value = 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        if c < 0x80:
            return value, i
        shift += 7


def spiffe_ids(msg):
    """SPIFFE IDs of an X509SVIDResponse: field 1 (svids), each an X509SVID whose field 1 is spiffe_id."""
    ids, i = [], 0
    while i < len(msg):
        key, i = varint(msg, i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            ln, i = varint(msg, i)
            body = msg[i : i + ln]
            i += ln
            if field == 1:
                j = 0
                while j < len(body):
                    k2, j = varint(body, j)
                    if k2 & 7 == 2:
                        l2, j = varint(body, j)
                        if k2 >> 3 == 1:
                            ids.append(body[j : j + l2].decode())
                        j += l2
                    elif k2 & 7 == 0:
                        _, j = varint(body, j)
                    else:
                        break
        elif wire == 0:
            _, i = varint(msg, i)
        else:
            break
    return ids


s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)
headers = b"".join(
    literal(k, v)
    for k, v in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/SpiffeWorkloadAPI/FetchX509SVID"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("workload.spiffe.io", "true"),
    ]
)
s.sendall(
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    + frame(0x4, 0, 0)  # SETTINGS (defaults)
    + frame(0x8, 0, 0, struct.pack(">I", 1 << 24))  # WINDOW_UPDATE, connection
    + frame(0x1, 0x4, 1, headers)  # HEADERS, END_HEADERS, stream 1
    + frame(0x8, 0, 1, struct.pack(">I", 1 << 24))  # WINDOW_UPDATE, stream 1
    + frame(0x0, 0x1, 1, b"\x00\x00\x00\x00\x00")  # DATA: one empty gRPC message, END_STREAM (the client half-closes; the server keeps streaming)
)

out = open(out_path, "a", buffering=1)
data = b""
forked = False
while True:
    try:
        head = read_exact(s, 9)
        ln = struct.unpack(">I", b"\x00" + head[:3])[0]
        ftype, flags, stream = head[3], head[4], struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
        payload = read_exact(s, ln)
    except EOFError:
        out.write(json.dumps({"closed": True}) + "\n")
        sys.exit(0)
    if os.environ.get("H2_DEBUG"): sys.stderr.write("frame type=%d flags=%d stream=%d len=%d %r\n" % (ftype, flags, stream, ln, payload[:60]))
    if ftype == 0x4 and not flags & 0x1:
        s.sendall(frame(0x4, 0x1, 0))  # ACK the server's SETTINGS
    elif ftype == 0x6 and not flags & 0x1:
        s.sendall(frame(0x6, 0x1, 0, payload))  # PING ACK
    elif ftype == 0x1 and flags & 0x1:
        out.write(json.dumps({"ended": True}) + "\n")
    elif ftype == 0x0 and stream == 1:
        data += payload
        while len(data) >= 5:
            mlen = struct.unpack(">I", data[1:5])[0]
            if len(data) < 5 + mlen:
                break
            msg, data = data[5 : 5 + mlen], data[5 + mlen :]
            out.write(json.dumps({"pid": os.getpid(), "spiffe_ids": spiffe_ids(msg)}) + "\n")
            if not forked and not os.environ.get("NO_FORK"):
                forked = True
                if os.fork() != 0:
                    os._exit(0)  # the connecting process leaves; its child keeps the stream
