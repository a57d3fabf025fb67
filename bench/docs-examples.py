#!/usr/bin/env python3
"""Runs the shell and configuration blocks of README.md and docs/*.md as written.

Each page runs in a scratch directory that holds copies of `docs/` and `examples/` and sits next
to `shared/` (the datasets), as a clone of the repository sits next to `../shared`: the blocks
run with the paths they show. `foresight` is on PATH (the release build, or with --profile
debug the debug one).

Blocks:
- ```sh: run with bash (`set -e`), in page order, each bounded in time. Processes a block
  starts in the background stay up for the page's later blocks and are stopped at its end.
- ```toml / ```yaml whose first line is `# NAME`: written to NAME in the scratch directory.
  Other TOML blocks are fragments: they must parse.

HTML comments right before a block's opening fence direct it:
- `<!-- example: skip REASON -->`       not run here (REASON says what it needs)
- `<!-- example: slow REASON -->`       run only with --all (REASON: how long, why)
- `<!-- example: timeout 10m -->`       bound (default 2m)
- `<!-- example: root -->`              run in the repository itself (the benchmark scripts)
and right after its closing fence:
- `<!-- example: check SHELL -->`       must exit 0: what the page says the block shows

Usage: docs-examples.py [--all] [--profile release|debug] [--page README.md] REPO SHARED
Prints one line per block; exits 1 if any block or check failed.
"""
import argparse
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import tomllib
except ImportError:  # Python < 3.11: fragments are not parsed
    tomllib = None

FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*example:\s*(\w+)\s*(.*?)\s*-->\s*$")


def parse_duration(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"bad duration {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def blocks(path):
    """The page's fenced blocks: dicts with lang, text, line, directives and checks."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, pending, i = [], {}, 0
    while i < len(lines):
        d = DIRECTIVE.match(lines[i])
        if d:
            pending.setdefault(d.group(1), []).append(d.group(2))
            i += 1
            continue
        f = FENCE.match(lines[i])
        if f and f.group(1):
            start = i
            body = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            i += 1
            checks = []
            while i < len(lines):
                d = DIRECTIVE.match(lines[i])
                if not (d and d.group(1) == "check"):
                    break
                checks.append(d.group(2))
                i += 1
            out.append(
                {
                    "lang": f.group(1),
                    "text": "\n".join(body) + "\n",
                    "line": start + 1,
                    "directives": pending,
                    "checks": checks,
                }
            )
            pending = {}
            continue
        if lines[i].strip():
            pending = {}
        i += 1
    return out


def stop_processes_in(directory):
    """Stops every process whose working directory is under `directory`: SIGTERM, then
    SIGKILL for any still there after 5 s (the next page may need their ports)."""
    directory = os.path.realpath(directory)

    def inside():
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                cwd = os.path.realpath(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd == directory or cwd.startswith(directory + os.sep):
                pids.append(int(pid))
        return pids

    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        for pid in inside():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while inside() and time.monotonic() < deadline:
            time.sleep(0.1)


def run_shell(script, cwd, timeout, env):
    """Runs `script` with bash; (ok, seconds, output tail). Output goes through a file, not a
    pipe: a process the script leaves in the background would hold a pipe open."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as log:
        try:
            p = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", script],
                cwd=cwd,
                env=env,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            ok, status = p.returncode == 0, f"(exit status {p.returncode})"
        except subprocess.TimeoutExpired:
            ok, status = False, f"(timed out after {timeout:.0f} s)"
        log.seek(0)
        out = log.read().decode(errors="replace").strip()
    if not ok:
        out += "\n" + status
    return ok, time.monotonic() - started, out[-1500:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--all", action="store_true", help="also run the blocks marked slow")
    ap.add_argument("--page", action="append", help="only these pages (repeatable)")
    ap.add_argument(
        "--profile",
        choices=["release", "debug"],
        default="release",
        help="which build's foresight is on PATH",
    )
    ap.add_argument("repo")
    ap.add_argument("shared")
    a = ap.parse_args()
    repo = os.path.realpath(a.repo)
    pages = a.page or ["README.md"] + sorted(
        os.path.join("docs", p) for p in os.listdir(os.path.join(repo, "docs")) if p.endswith(".md")
    )
    env = dict(os.environ)
    # A copy of the binary, so that a build may run beside the examples (CI builds the
    # features' tests meanwhile) without relinking the binary they run.
    bin_dir = tempfile.mkdtemp(prefix="foresight-docs-bin-")
    atexit.register(shutil.rmtree, bin_dir, True)
    built = os.path.join(repo, "target", a.profile, "foresight")
    if not os.path.isfile(built):
        sys.exit(f"error: {built} not found (build it first)")
    shutil.copy2(built, os.path.join(bin_dir, "foresight"))
    env["PATH"] = bin_dir + os.pathsep + env["PATH"]
    failed = 0
    counts = {"ran": 0, "skipped": 0, "slow": 0, "written": 0, "parsed": 0}
    for page in pages:
        work = tempfile.mkdtemp(prefix="foresight-docs-")
        os.symlink(os.path.realpath(a.shared), os.path.join(work, "shared"))
        scratch = os.path.join(work, "repo")
        os.mkdir(scratch)
        shutil.copytree(os.path.join(repo, "docs"), os.path.join(scratch, "docs"))
        shutil.copytree(os.path.join(repo, "examples"), os.path.join(scratch, "examples"))
        try:
            for b in blocks(os.path.join(repo, page)):
                where = f"{page}:{b['line']}"
                d = b["directives"]
                if "skip" in d:
                    counts["skipped"] += 1
                    print(f"skip  {where}: {d['skip'][0]}")
                    continue
                if "slow" in d and not a.all:
                    counts["slow"] += 1
                    print(f"slow  {where}: {d['slow'][0]} (run with --all)")
                    continue
                first = b["text"].split("\n", 1)[0]
                if b["lang"] in ("toml", "yaml", "yml"):
                    name = re.fullmatch(r"#\s*([\w./-]+)\s*", first)
                    if name:
                        target = os.path.join(scratch, name.group(1))
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        with open(target, "w") as f:
                            f.write(b["text"])
                        counts["written"] += 1
                        print(f"file  {where}: {name.group(1)}")
                    elif b["lang"] == "toml" and tomllib:
                        try:
                            tomllib.loads(b["text"])
                            counts["parsed"] += 1
                            print(f"toml  {where}: a fragment; parses")
                        except tomllib.TOMLDecodeError as e:
                            failed += 1
                            print(f"FAIL  {where}: not TOML: {e}")
                    continue
                if b["lang"] not in ("sh", "bash", "console"):
                    continue
                timeout = parse_duration(d["timeout"][0]) if "timeout" in d else 120
                cwd = repo if "root" in d else scratch
                ok, took, out = run_shell(b["text"], cwd, timeout, env)
                counts["ran"] += 1
                for check in b["checks"]:
                    if not ok:
                        break
                    ok, _, out = run_shell(check, scratch, 60, env)
                    if not ok:
                        out = f"check `{check}` failed:\n{out}"
                if ok:
                    extra = f", {len(b['checks'])} checks" if b["checks"] else ""
                    print(f"ok    {where}: {took:.1f} s{extra}")
                else:
                    failed += 1
                    print(f"FAIL  {where}: {took:.1f} s\n{out}\n")
        finally:
            stop_processes_in(work)
            shutil.rmtree(work, ignore_errors=True)
        sys.stdout.flush()
    print(
        f"\n{counts['ran']} blocks ran, {failed} failed; {counts['written']} files written, "
        f"{counts['parsed']} fragments parsed; {counts['skipped']} skipped, {counts['slow']} slow "
        f"(not run without --all)"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
