#!/usr/bin/env python3
"""Socket-level probes for bench/adversarial.sh (standard library only).

Each subcommand attacks a running `foresight serve` the way the probe of issue #23 did and
prints one JSON line of figures; the shell script judges them and prints pass/fail.
"""
import asyncio
import json
import sys
import time


def rss_kb(pid):
    """Resident and peak resident memory of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out["VmRSS"], out["VmHWM"]


async def read_all(reader, limit):
    """Reads until the peer closes or `limit` seconds pass; the bytes."""
    data = b""
    try:
        async with asyncio.timeout(limit):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
    except (TimeoutError, ConnectionError):
        pass
    return data


async def http_get(host, port, path, timeout=5.0):
    """One GET on a new connection; the status (0 if none) and the time it took."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
            await writer.drain()
            data = await read_all(reader, timeout)
            writer.close()
    except (TimeoutError, OSError):
        return 0, time.monotonic() - started
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, time.monotonic() - started


async def slow_headers(host, port, n, every):
    """`n` clients each send a header line every `every` seconds and never finish the head."""

    async def one():
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            return "refused", 0.0
        writer.write(b"GET /auth HTTP/1.1\r\nhost: x\r\n")
        k = 0
        while time.monotonic() - started < 60:
            try:
                await writer.drain()
                got = await asyncio.wait_for(reader.read(4096), timeout=every)
                writer.close()
                return got[:12].decode(errors="replace"), time.monotonic() - started
            except TimeoutError:
                writer.write(f"x-{k}: y\r\n".encode())
                k += 1
            except (ConnectionError, OSError):
                return "reset", time.monotonic() - started
        return "open", time.monotonic() - started

    results = await asyncio.gather(*(one() for _ in range(n)))
    answered = sum(1 for r, _ in results if r.startswith("HTTP/1.1 408"))
    return {"clients": n, "got_408": answered, "max_s": round(max(t for _, t in results), 2)}


async def big_headers(host, port, n, size, pid):
    """`n` clients each send a `size`-byte header value slowly (64 KiB a second)."""
    peak = 0

    async def one():
        nonlocal peak
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            return "refused"
        writer.write(b"GET /auth HTTP/1.1\r\nhost: x\r\nx-big: ")
        sent = 0
        data = b""
        while sent < size and not data:
            try:
                writer.write(b"v" * 65536)
                await writer.drain()
            except (ConnectionError, OSError):
                break
            sent += 65536
            peak = max(peak, rss_kb(pid)[0])
            # Read before writing more: the answer comes as soon as the limit is passed, and
            # writing into a connection the proxy closed would reset it.
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=1.0)
            except TimeoutError:
                pass
            except (ConnectionError, OSError):
                break
        writer.close()
        return data[:12].decode(errors="replace")

    results = await asyncio.gather(*(one() for _ in range(n)))
    return {
        "clients": n,
        "got_431": sum(1 for r in results if r.startswith("HTTP/1.1 431")),
        "peak_rss_mb": round(peak / 1024, 1),
    }


async def idle_connections(host, port, n, admin_port, pid, partial):
    """Opens `n` connections that send nothing (or, `partial`, half a request head); checks
    the admin API and a client meanwhile."""
    conns, refused = [], 0
    for _ in range(n):
        try:
            reader, writer = await asyncio.open_connection(host, port)
            if partial:
                writer.write(b"GET /auth HTTP/1.1\r\nhost: x\r\nx-slow: ")
            conns.append((reader, writer))
        except OSError:
            refused += 1
    await asyncio.sleep(1.0)
    # Connections the proxy answered 503 and closed.
    closed_503 = 0
    for reader, _ in conns:
        try:
            got = await asyncio.wait_for(reader.read(64), timeout=0.01)
            closed_503 += got.startswith(b"HTTP/1.1 503")
        except (TimeoutError, ConnectionError):
            pass
    rss, hwm = rss_kb(pid)
    admin_status, admin_s = await http_get(host, admin_port, "/healthz", timeout=5)
    client_status, client_s = await http_get(host, port, "/auth?ms=0", timeout=5)
    for _, writer in conns:
        writer.close()
    return {
        "connections": n,
        "connect_refused": refused,
        "answered_503": closed_503,
        "rss_mb": round(rss / 1024, 1),
        "peak_rss_mb": round(hwm / 1024, 1),
        "admin_status": admin_status,
        "admin_ms": round(admin_s * 1000, 1),
        "extra_client_status": client_status,
        "extra_client_ms": round(client_s * 1000, 1),
    }


async def slow_posts(host, port, n, declared):
    """`n` clients declare a `declared`-byte body and send 10 bytes of it."""

    async def one():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            return "refused"
        writer.write(
            f"POST /auth HTTP/1.1\r\nhost: x\r\ncontent-length: {declared}\r\n\r\n0123456789".encode()
        )
        await writer.drain()
        data = await read_all(reader, 60)
        writer.close()
        return data[:12].decode(errors="replace")

    results = await asyncio.gather(*(one() for _ in range(n)))
    statuses = {}
    for r in results:
        key = r[9:12] if r.startswith("HTTP/1.1 ") else (r or "none")
        statuses[key] = statuses.get(key, 0) + 1
    return {"clients": n, "statuses": statuses, "server_errors": sum(
        v for k, v in statuses.items() if k.startswith("5"))}


async def steady(host, port, path, rps, seconds):
    """Open-loop GETs of `path` at `rps` for `seconds`; counts of statuses."""
    counts = {}
    tasks = []

    async def one():
        status, _ = await http_get(host, port, path, timeout=10)
        counts[status] = counts.get(status, 0) + 1

    started = time.monotonic()
    k = 0
    while time.monotonic() - started < seconds:
        tasks.append(asyncio.create_task(one()))
        k += 1
        await asyncio.sleep(max(0.0, started + k / rps - time.monotonic()))
    await asyncio.gather(*tasks)
    total = sum(counts.values())
    bad = total - counts.get(200, 0)
    return {"requests": total, "statuses": counts, "failed_percent": round(100 * bad / total, 2)}


def main():
    cmd, host, port, *rest = sys.argv[1:]
    port = int(port)
    if cmd == "slow-headers":
        out = slow_headers(host, port, int(rest[0]), float(rest[1]))
    elif cmd == "big-headers":
        out = big_headers(host, port, int(rest[0]), int(rest[1]), int(rest[2]))
    elif cmd == "idle":
        out = idle_connections(
            host, port, int(rest[0]), int(rest[1]), int(rest[2]), len(rest) > 3 and rest[3] == "partial"
        )
    elif cmd == "slow-posts":
        out = slow_posts(host, port, int(rest[0]), int(rest[1]))
    elif cmd == "steady":
        out = steady(host, port, rest[0], float(rest[1]), float(rest[2]))
    else:
        raise SystemExit(f"unknown probe {cmd}")
    print(json.dumps(asyncio.run(out)))


if __name__ == "__main__":
    main()
