"""bench/benchlib.py -- helpers shared by the bench drivers (bench/compare, bench/cluster): free
ports, waiting for a listener, a process's CPU time and memory from /proc, nats-server config
files with the MQTT listener, medians and spread, and plain-text tables.

Standard library only; imported with bench/ on sys.path (the drivers add their own directory).
"""
import os
import resource
import socket
import statistics
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    """A TCP port of 127.0.0.1 free at the time of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=15, what="process"):
    """Wait until 127.0.0.1:port accepts a connection; RuntimeError if `proc` (a Popen) exits or
    the timeout passes first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s: port %d not listening within %ss" % (what, port, timeout))


def wait_http_ok(url, proc=None, timeout=30, what="process"):
    """Wait until GET url answers 200 (nats-server's /healthz: JetStream ready in a cluster)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception as e:  # 503 while JetStream elects its leaders, refused before listening
            last = e
        time.sleep(0.1)
    raise RuntimeError("%s: %s not ready within %ss (%s)" % (what, url, timeout, last))


def raise_nofile():
    """RLIMIT_NOFILE soft limit up to the hard one (also a Popen preexec_fn)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_cpu_ticks(pid):
    """User + system CPU of a process so far, in clock ticks (CLK_TCK per second)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15
    return int(fields[11]) + int(fields[12])


def proc_cpu_secs(pid):
    return proc_cpu_ticks(pid) / CLK_TCK


def proc_status_kb(pid, key):
    """A kB line of /proc/PID/status (VmRSS, VmHWM), 0 when absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def nats_conf(path, name, client_port, store_dir, mqtt_port=None, cluster_port=None, routes=(),
              cluster_name="tombo_bench", http_port=None):
    """Write a nats-server config: server_name (MQTT needs one), client listener and JetStream in
    store_dir; with mqtt_port the MQTT listener (NATS keeps MQTT sessions and QoS 1 messages in
    JetStream); with cluster_port a cluster block routing to `routes` (ports of the others);
    with http_port the monitoring endpoint (/healthz)."""
    with open(path, "w") as f:
        f.write("server_name: %s\nlisten: 127.0.0.1:%d\n" % (name, client_port))
        f.write('jetstream { store_dir: "%s" }\n' % store_dir)
        if mqtt_port:
            f.write("mqtt { listen: 127.0.0.1:%d }\n" % mqtt_port)
        if http_port:
            f.write("http: 127.0.0.1:%d\n" % http_port)
        if cluster_port:
            f.write("cluster {\n  name: %s\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n" % (
                cluster_name, cluster_port, ", ".join("nats-route://127.0.0.1:%d" % p for p in routes)))
    return path


def med(vals):
    """Median of the values that are not None, or None."""
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def spread(vals):
    """(max - min) / median of the values that are not None, or None (fewer than two values,
    median 0)."""
    vals = [v for v in vals if v is not None]
    if len(vals) < 2:
        return None
    m = statistics.median(vals)
    return (max(vals) - min(vals)) / m if m else None


def fmt(v, unit=""):
    """A figure for a table: '-' for None, strings as they are, 3 significant digits below 100."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return "{:,.0f}{}".format(v, unit)
    return "{:.3g}{}".format(v, unit)


def ratio(t, m):
    if t is None or m is None or isinstance(t, str) or isinstance(m, str) or m == 0:
        return "-"
    return "{:.2f}x".format(t / m)


def markdown_table(header, rows):
    """Lines of a Markdown table, columns padded to their widest cell; cells are strings."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    out = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    return out
