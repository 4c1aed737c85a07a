#!/usr/bin/env python3
"""codestep serve beside workerd and Deno, through one harness; prints one table.

Started by `scripts/bench-peers`, which installs the peers and the tools. Every server under test is
pinned to SERVER_CPU; wrk and the HTTPS upstream (nginx) to CLIENT_CPU. Each round measures every system
once per test, in an order rotated per round; the table gives the median over rounds of each value, and
the ratios are medians of per-round ratios (steadier than either value on a shared machine).

Systems (each gets the same request body, {"code", "input", "connectors"}):
  cs-serve     codestep serve --workers 1 (process mode, sandboxed): a fresh isolate per step
  cs-base      the same with another binary (--codestep-base), to compare two builds in one run
  wd-loader    workerd, Worker Loader: a fresh isolate per request, compiled from the request's code
  wd-static    workerd, the steps built in: one isolate for every request (no isolation; the bound)
  deno-worker  Deno, a long-lived host making a new Worker per step
Stdlib only.
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
H = "127.0.0.15"
STEPS = {k: open(os.path.join(HERE, "steps", f"{k}.mjs")).read() for k in ("trivial", "fetch", "sleep")}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- processes and memory -------------------------------------------------------------------------


def children(pid, direct=False):
    """pid and all its descendants (or, with direct, only its children)."""
    by_parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        by_parent.setdefault(ppid, []).append(int(d))
    if direct:
        return by_parent.get(pid, [])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(by_parent.get(p, []))
    return out


def rollup(pid):
    """(Pss, Private) in KiB of one process, from smaps_rollup."""
    pss = priv = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith(("Private_Clean:", "Private_Dirty:")):
                    priv += int(line.split()[1])
    except OSError:
        pass
    return pss, priv


LIVE = []


class Server:
    def __init__(self, name, cmd, cpu, work, env=None, port=None):
        self.name, self.port = name, port
        LIVE.append(self)
        self.out = open(os.path.join(work, f"{name}.log"), "ab")
        self.p = subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, **(env or {})), start_new_session=True)
        if port:
            wait_port(port, self)

    def pss_tree(self):
        """Total PSS (KiB) of the server and its descendants, and (PSS, private KiB) of each child with
        its own descendants (a codestep worker and the step process it forked)."""
        total = rollup(self.p.pid)[0]
        kids = []
        for c in children(self.p.pid, direct=True):
            pss = priv = 0
            for p in children(c):
                one = rollup(p)
                pss += one[0]
                priv += one[1]
            total += pss
            kids.append((pss, priv))
        return total, kids

    def cpu_s(self):
        """CPU seconds (user + system) used so far by the server and its live descendants, and by the
        children they reaped (a codestep worker reaps the process it forked for each step)."""
        ticks = 0
        for p in children(self.p.pid):
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ticks += sum(int(v) for v in fields[11:15])
            except (OSError, IndexError, ValueError):
                pass
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.out.closed:
            return
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=8)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.out.close()


def wait_port(port, server=None, timeout=60):
    import socket
    t0 = time.time()
    while time.time() - t0 < timeout:
        if server and server.p.poll() is not None:
            raise SystemExit(f"{server.name} exited with {server.p.returncode}; see its log")
        try:
            socket.create_connection((H, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {H}:{port}")


def post(port, path, body, token=None, timeout=60):
    c = http.client.HTTPConnection(H, port, timeout=timeout)
    try:
        hdr = {"content-type": "application/json"}
        if token:
            hdr["authorization"] = f"Bearer {token}"
        c.request("POST", path, body if isinstance(body, str) else json.dumps(body), hdr)
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


# --- the systems ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, a):
        self.a = a
        self.tls = os.path.join(a.work, "tls")
        self.upstream_port = a.port_base + 443
        self.allow = f"{H}:{self.upstream_port}"
        self.cs_env = {
            "CODESTEP_MASTER_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "CODESTEP_OPERATOR_TOKEN": "bench-operator-token-0123456789",
            "CODESTEP_LOG": "warn",
        }
        self.tokens = {}
        self.servers = {}
        self.dbs = []

    def fetch_url(self, system):
        # codestep's patterns take DNS names only: it calls a name that --resolve maps to the upstream.
        host = "echo.bench.test" if system.startswith("cs-") else H
        return f"https://{host}:{self.upstream_port}/echo"

    def start_upstream(self):
        conf = open(os.path.join(HERE, "nginx.conf.in")).read()
        for k, v in {"@WORK@": self.a.work, "@HOST@": H, "@PORT@": str(self.upstream_port)}.items():
            conf = conf.replace(k, v)
        path = os.path.join(self.a.work, "nginx.conf")
        open(path, "w").write(conf)
        self.servers["nginx"] = Server("nginx", ["nginx", "-c", path, "-g", "daemon off;"], self.a.client_cpu,
                                       self.a.work, port=self.upstream_port)

    def start(self, system, port, concurrency=1, tag=""):
        a, w = self.a, self.a.work
        name = system + tag
        if system.startswith("cs-"):
            binary = a.codestep if system == "cs-serve" else a.codestep_base
            # The store on tmpfs when there is one: the disk is shared with builds, and its fsyncs are not the
            # engine's cost (the store has its own bench, `cargo bench --bench store_run`).
            db = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else w, f"codestep-bench-{os.getpid()}-{len(self.dbs)}.db")
            self.dbs.append(db)
            cmd = [binary, "serve", "--db", db, "--create-store", "--listen", f"{H}:{port}", "--workers", str(concurrency),
                   "--queue", "64", "--allow-private", f"{H}/32", "--ca-cert", os.path.join(self.tls, "ca.pem"),
                   "--resolve", f"echo.bench.test:{H}"]
            s = self.servers[name] = Server(name, cmd, a.server_cpu, w, self.cs_env, port)
            self.setup_codestep(name, port)
        elif system == "deno-worker":
            s = Server(name, [a.deno, "run", "--no-config", "--no-lock", "--no-prompt", "--unstable-worker-options",
                              f"--allow-net={H}:{port},{self.allow}", "--cert", os.path.join(self.tls, "ca.pem"),
                              os.path.join(HERE, "deno", "host.mjs"), H, str(port), self.allow],
                       a.server_cpu, w, {"DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1",
                                         "DENO_DIR": os.path.join(w, "deno-dir")}, port)
        else:
            kind = system.split("-")[1]
            conf = open(os.path.join(HERE, "wd", f"{kind}.capnp.in")).read()
            conf = conf.replace("@LISTEN@", f"{H}:{port}").replace("@ALLOW@", self.allow)
            cpath = os.path.join(w, "wd", f"{name}.capnp")
            open(cpath, "w").write(conf)
            s = Server(name, [a.workerd, "serve", cpath, "--experimental"], a.server_cpu, w, None, port)
        self.servers[name] = s
        return s

    def setup_codestep(self, name, port):
        op = self.cs_env["CODESTEP_OPERATOR_TOKEN"]
        st, body = post(port, "/v1/workspaces", {"name": "bench"}, op)
        if st not in (200, 201):
            raise SystemExit(f"{name}: create workspace: {st} {body}")
        st, body = post(port, "/v1/workspaces/bench/tokens", {"label": "bench", "scopes": ["run"]}, op)
        if st not in (200, 201):
            raise SystemExit(f"{name}: create token: {st} {body}")
        self.tokens[name] = json.loads(body)["token"]
        conn = {"name": "echo", "patterns": [f"https://echo.bench.test:{self.upstream_port}/*"],
                "placement": {"type": "header", "name": "Authorization", "template": "Bearer {{secret}}"},
                "secret": "s3cr3t"}
        st, body = post(port, "/v1/workspaces/bench/connectors", conn, op)
        if st not in (200, 201):
            raise SystemExit(f"{name}: create connector: {st} {body}")

    def request(self, name, step, inp):
        """(path, body, token) of one step for server `name`."""
        system = name.split("@")[0]
        connectors = ["echo"] if step == "fetch" else []
        body = {"code": STEPS[step], "input": inp, "connectors": connectors}
        if system.startswith("cs-"):
            return "/v1/workspaces/bench/runs", json.dumps(body), self.tokens[name]
        if system == "wd-static":
            body["step"] = step  # its steps are built in; the code is ignored
        return "/", json.dumps(body), None

    def input_for(self, name, step):
        if step == "fetch":
            return {"url": self.fetch_url(name)}
        if step == "sleep":
            return {"ms": self.a.hold_ms}
        return {"n": 1}

    def stop_all(self):
        for s in LIVE:
            s.stop()
        for db in self.dbs:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.unlink(db + suffix)


# --- load -----------------------------------------------------------------------------------------

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def dur_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)$", s)
    return float(m.group(1)) * UNIT[m.group(2)]


def wrk(a, port, path, body, token, conc, secs, check):
    env = dict(os.environ, BODY=body, AUTH=token or "", CHECK=check)
    cmd = ["taskset", "-c", str(a.client_cpu), "wrk", "-t1", f"-c{conc}", f"-d{secs}s", "--latency",
           "-s", os.path.join(HERE, "post.lua"), f"http://{H}:{port}{path}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=secs + 60).stdout
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "n": int(re.search(r"(\d+) requests in", out).group(1))}
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        res[key] = dur_ms(m.group(1)) if m else float("nan")
    bad = re.search(r"BAD (\d+)", out)
    res["bad"] = int(bad.group(1)) if bad else -1
    if res["bad"]:
        raise SystemExit(f"bad responses from port {port}: {out}")
    return res


def sanity(b, name, port):
    for step, must in (("trivial", '"n":1'), ("fetch", '"x_test":"1"')):
        path, body, tok = b.request(name, step, b.input_for(name, step))
        st, out = post(port, path, body, tok)
        if st != 200 or must.replace(" ", "") not in out.replace(" ", ""):
            raise SystemExit(f"{name}: {step} step failed: {st} {out[:300]}")
        if step == "fetch" and name != "deno-worker" and '"auth_ok":"yes"' not in out.replace(" ", ""):
            raise SystemExit(f"{name}: the secret did not reach the upstream: {out[:300]}")


def rotate(xs, k):
    k %= len(xs)
    return xs[k:] + xs[:k]


def load_phase(b, systems, ports):
    a = b.a
    rows = {s: [] for s in systems}
    for s in systems:
        sanity(b, s, ports[s])
        for step in ("trivial", "fetch"):  # warm: pooled connections, caches
            path, body, tok = b.request(s, step, b.input_for(s, step))
            wrk(a, ports[s], path, body, tok, 1, 1, '"ok":true')
    for rnd in range(a.rounds):
        order = rotate(systems, rnd)
        log(f"round {rnd + 1}/{a.rounds}: {' '.join(order)}")
        got = {s: {} for s in systems}
        for test, step, conc, secs in (("triv", "trivial", 1, a.secs), ("c8", "trivial", a.conc, a.tput_secs),
                                       ("fetch", "fetch", 1, a.secs)):
            for s in order:
                path, body, tok = b.request(s, step, b.input_for(s, step))
                cpu0 = b.servers[s].cpu_s()
                got[s][test] = wrk(a, ports[s], path, body, tok, conc, secs, '"ok":true')
                got[s][test]["cpu_ms"] = (b.servers[s].cpu_s() - cpu0) * 1000 / max(got[s][test]["n"], 1)
        for s in systems:
            g = got[s]
            rows[s].append({"triv_p50": g["triv"]["p50"], "triv_p99": g["triv"]["p99"], "c8": g["c8"]["rps"],
                            "triv_cpu": g["c8"]["cpu_ms"], "fetch_cpu": g["fetch"]["cpu_ms"],
                            "fetch_p50": g["fetch"]["p50"], "fetch_cost": g["fetch"]["p50"] - g["triv"]["p50"]})
    return rows


def hold(b, name, port, n):
    """n sleep steps at once; returns once all answered."""
    path, body, tok = b.request(name, "sleep", b.input_for(name, "sleep"))
    errors = []

    def one():
        st, out = post(port, path, body, tok)
        if st != 200:
            errors.append(f"{st} {out[:200]}")

    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts:
        t.start()
    return ts, errors


def memory_phase(b, systems):
    """Per system and round, a fresh server able to run N steps at once: PSS (all its processes) idle
    after one step, and at its peak while N sleep steps hold their isolates."""
    a = b.a
    n = a.mem_n
    out = {s: [] for s in systems}
    for rnd in range(a.mem_rounds):
        for s in rotate(systems, rnd):
            port = a.port_base + 90
            srv = b.start(s, port, concurrency=n, tag="@mem")
            name = s + "@mem"
            path, body, tok = b.request(name, "trivial", {"n": 1})
            post(port, path, body, tok)
            time.sleep(1.0)
            idle, _ = srv.pss_tree()
            ts, errors = hold(b, name, port, n)
            peak, kids_at_peak = idle, []
            t_end = time.time() + a.hold_ms / 1000.0 * 0.9
            time.sleep(a.hold_ms / 1000.0 * 0.3)
            while time.time() < t_end:
                total, kids = srv.pss_tree()
                if total > peak:
                    peak, kids_at_peak = total, kids
                time.sleep(0.05)
            for t in ts:
                t.join()
            if errors:
                raise SystemExit(f"{s}: memory steps failed: {errors[0]}")
            out[s].append({"idle": idle / 1024, "peak": peak / 1024, "per_step": (peak - idle) / 1024 / n,
                           "worker_pss": med([k[0] / 1024 for k in kids_at_peak]),
                           "worker_private": med([k[1] / 1024 for k in kids_at_peak])})
            srv.stop()
            del b.servers[name]
    return out


# --- report ---------------------------------------------------------------------------------------


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def report(a, systems, load, mem):
    print(f"\nper core (servers pinned to CPU {a.server_cpu}); medians over {a.rounds} interleaved rounds"
          + (f", memory over {a.mem_rounds} fresh starts with {a.mem_n} steps at once" if mem else ""))
    cols = ["trivial step p50 (ms)", "trivial step p99 (ms)", f"trivial steps/s, {a.conc} concurrent",
            "one-fetch step p50 (ms)", "fetch cost: fetch - trivial p50 (ms)",
            f"server CPU per trivial step at {a.conc} concurrent (ms)", "server CPU per fetch step (ms)"]
    keys = ["triv_p50", "triv_p99", "c8", "fetch_p50", "fetch_cost", "triv_cpu", "fetch_cpu"]
    print("\n| | " + " | ".join(systems) + " |")
    print("|---|" + "---|" * len(systems))
    if load:
        for col, key in zip(cols, keys):
            nd = 0 if key == "c8" else 2
            print(f"| {col} | " + " | ".join(fmt(med([r[key] for r in load[s]]), nd) for s in systems) + " |")
    if mem:
        print("| memory growth per step in flight, (peak - idle) / N (MiB PSS) | " + " | ".join(
            fmt(med([r["per_step"] for r in mem[s]])) for s in systems) + " |")
        print("| idle PSS, all processes (MiB; codestep: a ready isolate in each of N workers) | " + " | ".join(
            fmt(med([r["idle"] for r in mem[s]]), 1) for s in systems) + " |")
        print("| PSS per worker at peak (with the step process it forked): one more concurrent step, all counted (MiB) | " + " | ".join(
            fmt(med([r["worker_pss"] for r in mem[s]]), 1) for s in systems) + " |")
        print("| private memory per worker at peak (with its step process) (MiB) | " + " | ".join(
            fmt(med([r["worker_private"] for r in mem[s]]), 1) for s in systems) + " |")
    if load and "cs-serve" in systems:
        peers = [s for s in systems if s != "cs-serve"]
        print("\ncs-serve / peer, median of per-round ratios (latency < 1 and steps/s > 1: codestep ahead)\n")
        print("| peer | trivial p50 | steps/s | fetch p50 | fetch cost | CPU per trivial step | CPU per fetch step |")
        print("|---|---|---|---|---|---|---|")
        for p in peers:
            r = [med([x[k] / y[k] for x, y in zip(load["cs-serve"], load[p]) if y[k] > 0])
                 for k in ("triv_p50", "c8", "fetch_p50", "fetch_cost", "triv_cpu", "fetch_cpu")]
            print(f"| {p} | " + " | ".join(fmt(x) for x in r) + " |")
        spread = [(max(v) - min(v)) / statistics.median(v) * 100
                  for s in systems for v in [[r["triv_p50"] for r in load[s]]]]
        print(f"\nnoise: per-round spread of trivial p50, (max-min)/median: "
              + ", ".join(f"{s} {x:.0f}%" for s, x in zip(systems, spread)))
    print(f"load average at the end: {open('/proc/loadavg').read().split()[:3]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True)
    p.add_argument("--codestep", required=True)
    p.add_argument("--codestep-base")
    p.add_argument("--deno")
    p.add_argument("--workerd")
    p.add_argument("--systems", default="cs-serve,wd-loader,wd-static,deno-worker")
    p.add_argument("--phases", default="load,memory")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--secs", type=int, default=2)
    p.add_argument("--tput-secs", type=int, default=3)
    p.add_argument("--conc", type=int, default=8)
    p.add_argument("--mem-n", type=int, default=16)
    p.add_argument("--mem-rounds", type=int, default=3)
    p.add_argument("--hold-ms", type=int, default=2000)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--port-base", type=int, default=19000)
    a = p.parse_args()
    systems = a.systems.split(",")
    if "cs-base" in systems and not a.codestep_base:
        raise SystemExit("cs-base needs --codestep-base")
    os.makedirs(os.path.join(a.work, "wd"), exist_ok=True)
    b = Bench(a)
    load = mem = None
    try:
        b.start_upstream()
        phases = a.phases.split(",")
        if "load" in phases:
            ports = {s: a.port_base + 80 + i for i, s in enumerate(systems)}
            for s in systems:
                b.start(s, ports[s])
            load = load_phase(b, systems, ports)
            for s in systems:
                b.servers.pop(s).stop()
        if "memory" in phases:
            mem = memory_phase(b, systems)
    finally:
        b.stop_all()
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump({"load": load, "memory": mem}, f, indent=1)
    report(a, systems, load, mem)


if __name__ == "__main__":
    main()
