#!/usr/bin/env python3
"""N open `/ui` dashboards, as far as the proxy can tell: each loads the page's three assets
once, then every 2 s (the page's POLL_MS) fetches /control and /services and, per service
that /control lists, /services/NAME/control/history since the newest point it holds, on its
own keep-alive connection, as a browser tab does. Runs until killed; prints a line of counts
every 30 s to stderr.

Usage: dashboard-pollers.py N ADMIN_HOST:PORT
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

POLL_S = 2.0


def dashboard(admin, counts, lock):
    host, port = admin.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    newest = {}

    def get(path):
        nonlocal conn
        try:
            conn.request("GET", path, headers={"Cache-Control": "no-store"})
            r = conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            with lock:
                counts["errors"] += 1
            return None
        with lock:
            counts["requests"] += 1
        return body if r.status == 200 else None

    for asset in ("/ui", "/ui/app.js", "/ui/app.css"):
        get(asset)
    while True:
        started = time.monotonic()
        control = get("/control")
        get("/services")
        names = []
        if control:
            v = json.loads(control)
            names = [s["service"] for s in v.get("services", [v])]
        for name in names:
            q = "" if name not in newest else f"?since={newest[name]}"
            h = get(f"/services/{urllib.parse.quote(name)}/control/history{q}")
            if h:
                points = json.loads(h).get("points", [])
                if points:
                    newest[name] = points[-1]["t"]
        time.sleep(max(0.0, POLL_S - (time.monotonic() - started)))


def main():
    if len(sys.argv) != 3 or not sys.argv[1].isdigit() or not 1 <= int(sys.argv[1]) <= 100:
        sys.exit("usage: dashboard-pollers.py N(1..100) ADMIN_HOST:PORT")
    n, admin = int(sys.argv[1]), sys.argv[2]
    counts, lock = {"requests": 0, "errors": 0}, threading.Lock()
    for _ in range(n):
        threading.Thread(target=dashboard, args=(admin, counts, lock), daemon=True).start()
    while True:
        time.sleep(30)
        with lock:
            print(f"dashboards: {n} open, {counts['requests']} requests, {counts['errors']} errors",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
