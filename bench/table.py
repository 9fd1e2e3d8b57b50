#!/usr/bin/env python3
"""Turn the JSON that bench/run.sh collected into the results table of
BENCHMARK.md: figure by figure, parley beside each anchor, and parley's
advantage as a ratio (above 1: parley is better on that figure).

Usage: table.py RESULTS_DIR BENCHMARK.md
The table replaces what stands between the two marker lines of the
document; without them it is appended."""

import json
import os
import sys

BEGIN = "<!-- results:begin (written by bench/run.sh; edit the prose outside) -->"
END = "<!-- results:end -->"
SERVERS = ["parley", "prosody", "ejabberd"]
ANCHORS = ["prosody", "ejabberd"]


def get(r, *path):
    for p in path:
        if r is None:
            return None
        r = r.get(p)
    return r


# (label, workload, path into the JSON, "lower"/"higher" is better or None)
ROWS = [
    ("login+chat: logins/s (STARTTLS+PLAIN)", "chat", ("logins", "per_s"), "higher"),
    ("login+chat: login latency p50 (ms)", "chat", ("logins", "latency_p50_ms"), "lower"),
    ("login+chat: login latency p99 (ms)", "chat", ("logins", "latency_p99_ms"), "lower"),
    ("login+chat: messages delivered/s", "chat", ("chat", "delivered_per_s"), "higher"),
    ("login+chat: messages sent", "chat", ("chat", "sent"), None),
    ("login+chat: messages lost", "chat", ("chat", "lost"), None),
    ("login+chat: end-to-end latency p50 (ms)", "chat", ("chat", "latency_p50_ms"), "lower"),
    ("login+chat: end-to-end latency p99 (ms)", "chat", ("chat", "latency_p99_ms"), "lower"),
    ("login+chat: server CPU per delivered message (µs)", "chat", ("server", "cpu_per_message_us"), "lower"),
    ("login+chat: server RSS per connection (KiB)", "chat", ("server", "rss_per_conn_kib"), "lower"),
    ("login burst: SCRAM-SHA-1 logins/s", "burst", ("logins", "per_s"), "higher"),
    ("login burst: login latency p99 (ms)", "burst", ("logins", "latency_p99_ms"), "lower"),
    ("login burst: server CPU per login (µs)", "burst", ("server", "cpu_per_login_us"), "lower"),
    ("idle: connections held", "idle", ("idle", "held"), None),
    ("idle: logins/s (STARTTLS+PLAIN)", "idle", ("logins", "per_s"), "higher"),
    ("idle: server RSS per connection (KiB)", "idle", ("server", "rss_per_conn_kib"), "lower"),
]


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 100:
        return f"{int(v):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(p, a, better):
    if better is None or p is None or a is None or p <= 0 or a <= 0:
        return "–"
    r = a / p if better == "lower" else p / a
    return f"×{r:.2f}" if r < 10 else f"×{r:.0f}"


def load(results):
    data = {}
    for s in SERVERS:
        for w in ("chat", "burst", "idle"):
            path = os.path.join(results, f"{s}-{w}.json")
            try:
                with open(path) as f:
                    data[(s, w)] = json.load(f)
            except (OSError, ValueError):
                data[(s, w)] = None
    env = {}
    try:
        with open(os.path.join(results, "env.txt")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                env[k] = v
    except OSError:
        pass
    return data, env


def table(data, env):
    out = []
    out.append(
        f"Measured {env.get('date', '?')} on {env.get('cpu', '?')}, {env.get('memory', '?')}, "
        f"{env.get('os', '?')}; parley {env.get('parley', '?')}, Prosody {env.get('prosody', '?')}, "
        f"ejabberd {env.get('ejabberd', '?')}. Settings: `{env.get('settings', '?')}`."
    )
    out.append("")
    out.append("Ratios are parley's advantage: above 1 parley is better on that figure, below 1 worse.")
    out.append("")
    out.append("| figure | parley | Prosody | ejabberd | parley vs Prosody | parley vs ejabberd |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for label, w, path, better in ROWS:
        vals = {s: get(data[(s, w)], *path) for s in SERVERS}
        row = [label] + [fmt(vals[s]) for s in SERVERS]
        row += [ratio(vals["parley"], vals[a], better) for a in ANCHORS]
        out.append("| " + " | ".join(row) + " |")
    errs = []
    for (s, w), r in sorted(data.items()):
        e = get(r, "logins", "first_error")
        if r is None:
            errs.append(f"- {s} {w}: no result")
        elif e:
            errs.append(f"- {s} {w}: first login error: `{e}`")
    if errs:
        out.append("")
        out.extend(errs)
    return "\n".join(out)


def main():
    results, doc = sys.argv[1], sys.argv[2]
    data, env = load(results)
    block = BEGIN + "\n" + table(data, env) + "\n" + END
    text = ""
    if os.path.exists(doc):
        with open(doc) as f:
            text = f.read()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    with open(doc, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
