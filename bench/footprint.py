#!/usr/bin/env python3
"""Start-up time and idle-connection memory of the release binary (issue 6 targets).

    python3 bench/footprint.py [--connections 10000] [--starts 5]

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


def main():
    global BINARY
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--starts", type=int, default=5)
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
            request = b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n"
            conns = []
            began = time.monotonic()
            for i in range(args.connections):
                raw = socket.create_connection(("127.0.0.1", port), timeout=10)
                tls = context.wrap_socket(raw, server_hostname="localhost")
                tls.sendall(request)
                head = tls.recv(4096)
                if not head.startswith(b"HTTP/1.1 401"):
                    sys.exit(f"connection {i}: unexpected answer {head[:40]!r}")
                conns.append(tls)
            opened = time.monotonic() - began
            time.sleep(1)
            after = rss_kib(proc.pid)
            per = (after - before) / args.connections
            print(f"{args.connections} idle keep-alive TLS connections (opened in {opened:.1f} s): "
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
