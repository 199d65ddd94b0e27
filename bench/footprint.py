#!/usr/bin/env python3
"""Start-up time and idle-connection memory of the release binary (issue 6 targets).

    python3 bench/footprint.py [--connections 10000] [--starts 5] [--http2] [--binary PATH]

1. Start-up to ready: `portcullis serve` is started --starts times on a configuration written
   by `portcullis init` (keys already generated, so key generation is excluded); the time from
   spawn until the admin /readyz answers 200 is measured; the median is printed.
2. Idle keep-alive TLS connections: --connections TLS connections are opened to the gateway,
   each completes its handshake and one proxied-route request (answered 401 without a token,
   so no upstream is needed) and then stays open and idle. The gateway's RSS (VmRSS) before and
   after gives the cost per connection.

Everything listens on 127.0.0.1; every process started is stopped. Needs only Python 3 and a
release build (`cargo build --release`).
"""

import argparse
import os
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "portcullis")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder, port, admin):
    subprocess.run([BINARY, "init", "--dir", folder], check=True, capture_output=True)
    config = os.path.join(folder, "config", "portcullis.toml")
    text = open(config).read()
    text = text.replace('listen = "0.0.0.0:8443"', f'listen = "127.0.0.1:{port}"\n'
                        'max_connections = 50000\nheader_read_timeout = "600s"\n'
                        'idle_timeout = "600s"')
    text = text.replace('listen = "127.0.0.1:9901"', f'listen = "127.0.0.1:{admin}"')
    text = text.replace('format = "pretty"', 'format = "json"\naccess_log = false')
    open(config, "w").write(text)
    return config


def ready(admin):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def start(config, admin):
    began = time.monotonic()
    proc = subprocess.Popen([BINARY, "serve", "-c", config],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = began + 10
    while not ready(admin):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            sys.exit("the gateway did not become ready")
        time.sleep(0.001)
    return proc, time.monotonic() - began


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def h1_request(tls):
    """One HTTP/1.1 request on a proxied route without a token: True on its 401."""
    tls.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return tls.recv(4096).startswith(b"HTTP/1.1 401")


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_request(tls):
    """The HTTP/2 preface and one GET on stream 1 (HPACK: static-table indices and a literal
    :authority); True once the response's HEADERS frame for stream 1 arrives."""
    # :method GET, :scheme https (indexed); :path "/x" (literal, name 4); :authority "localhost"
    block = b"\x82\x87\x44\x02/x\x41\x09localhost"
    tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(0x4, 0, 0)
                + h2_frame(0x1, 0x5, 1, block))
    buf = b""
    acked = False
    while True:
        while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
            chunk = tls.recv(16384)
            if not chunk:
                return False
            buf += chunk
        size = int.from_bytes(buf[:3], "big")
        kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        buf = buf[9 + size:]
        if kind == 0x4 and not flags & 0x1 and not acked:
            tls.sendall(h2_frame(0x4, 0x1, 0))
            acked = True
        if kind == 0x1 and stream == 1:
            return True


def main():
    global BINARY
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--http2", action="store_true",
                        help="HTTP/2 connections (ALPN h2), one request each; default HTTP/1.1")
    parser.add_argument("--binary", default=BINARY,
                        help="the gateway to measure (default: the release build)")
    args = parser.parse_args()
    BINARY = args.binary
    if not os.access(BINARY, os.X_OK):
        sys.exit(f"{BINARY} is missing: cargo build --release")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    folder = tempfile.mkdtemp(prefix="portcullis-footprint-")
    try:
        port, admin = free_port(), free_port()
        config = write_config(folder, port, admin)
        cert = os.path.join(folder, "certs", "gateway.crt")

        times = []
        for _ in range(args.starts):
            proc, took = start(config, admin)
            times.append(took * 1000)
            stop(proc)
        print(f"start-up to ready: median {statistics.median(times):.1f} ms "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})")

        proc, _ = start(config, admin)
        try:
            time.sleep(0.5)
            before = rss_kib(proc.pid)
            context = ssl.create_default_context(cafile=cert)
            context.set_alpn_protocols(["h2" if args.http2 else "http/1.1"])
            exchange = h2_request if args.http2 else h1_request
            conns = []
            began = time.monotonic()
            for i in range(args.connections):
                raw = socket.create_connection(("127.0.0.1", port), timeout=10)
                tls = context.wrap_socket(raw, server_hostname="localhost")
                if not exchange(tls):
                    sys.exit(f"connection {i}: no 401 answer")
                conns.append(tls)
            opened = time.monotonic() - began
            time.sleep(1)
            after = rss_kib(proc.pid)
            per = (after - before) / args.connections
            protocol = "HTTP/2" if args.http2 else "HTTP/1.1"
            print(f"{args.connections} idle keep-alive {protocol} TLS connections "
                  f"(opened in {opened:.1f} s): "
                  f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB, "
                  f"{per:.1f} KiB per connection")
            for c in conns:
                c.close()
        finally:
            stop(proc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
