#!/usr/bin/env python3
"""How much of a run's SLO violation falls before a time and how much after, and what replicas
held from the start (a static allocation per service) leave on each side: the budget a policy has
after its start-up, against what capacity held all along can reach at a cost.

    # split run folders (any policy) at 100 s, or into several intervals (0-60, 60-100, 100-end):
    python3 scripts/held_capacity.py split --at 100 runs/a runs/b
    python3 scripts/held_capacity.py split --at 60,100 runs/a
    # run per-service allocations held from 0 s under the static policy (seeds 1-3), and split:
    python3 scripts/held_capacity.py static scenarios/online_boutique_azure_trace.yaml OUT \\
        --alloc frontend=7,productcatalogservice=3 --alloc frontend=5 --seeds 1 2 3 --at 100

Each row: the run (or allocation), its policy, seeds, cost, SLO violation (%), and the points of
that violation from requests arriving in each interval the `--at` times cut the run into (they add
up to it: points are violating requests over all the run's requests, x100), in columns
`points_0_100s` and `points_100s_end` for `--at 100`. `static` writes one
scenario per allocation into OUT, named by it (`frontend7-productcatalogservice3.yaml`; services not
named keep the scenario's replicas; a relative trace path is made absolute), and its run folders
under OUT/runs/<that name>/s<seed>, keeping complete ones, so a rerun resumes; SCALESIM names the binary (default ./target/release/scalesim).
"""
import argparse
import bisect
import csv
import json
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def fail(msg):
    print(f"held_capacity: {msg}", file=sys.stderr)
    sys.exit(2)


def split(run, cuts):
    """(policy, seed, cost, slo %, points in each interval `cuts` (rising times) bound) of one run
    folder."""
    summary_path = os.path.join(run, "summary.json")
    requests_path = os.path.join(run, "requests.csv")
    for p in (summary_path, requests_path):
        if not os.path.isfile(p):
            fail(f"{run}: no {os.path.basename(p)} (not a complete run folder)")
    summary = json.load(open(summary_path))
    arrived = 0
    violating = [0] * (len(cuts) + 1)
    with open(requests_path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                t, n, v = float(row["time_s"]), int(row["arrived"]), int(row["violating"])
            except (KeyError, TypeError, ValueError) as e:
                fail(f"{requests_path} line {line}: time_s/arrived/violating: {e}")
            arrived += n
            violating[bisect.bisect_right(cuts, t)] += v
    points = [100.0 * v / arrived if arrived else 0.0 for v in violating]
    return (summary["policy"], summary["seed"], summary["cost"], summary["slo_violation_pct"], *points)


def parse_alloc(text, services, scenario):
    """`name=count,...` as {name: count}, every name one of the scenario's services."""
    alloc = {}
    for part in text.split(","):
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep or not count.strip().isdigit() or int(count) < 1:
            fail(f"--alloc {text!r}: `{part}` is not NAME=COUNT with a count of at least 1")
        if name not in services:
            fail(f"--alloc {text!r}: {scenario} has no service `{name}` (it has: {', '.join(services)})")
        alloc[name] = int(count)
    return alloc


def service_names(text):
    """The scenario's service names, in order, as the two YAML forms its files use write them:
    `- { name: x, replicas: n, ...}` and `- name: x` with `replicas: n` on a following line."""
    section = text.split("\nservices:", 1)[-1].split("\nrequest_types:", 1)[0]
    return re.findall(r"^\s*- *\{? *name: *([\w.-]+)", section, flags=re.M)


def with_replicas(text, alloc):
    """The scenario's text with each named service's initial `replicas:` set."""
    head, sep, rest = text.partition("\nservices:")
    section, sep2, tail = rest.partition("\nrequest_types:")
    for name, count in alloc.items():
        pattern = rf"(- *\{{ *name: *{re.escape(name)} *,[^}}]*?\breplicas: *)\d+|(- *name: *{re.escape(name)}\s*\n(?:[ \t]+(?!- )[^\n]*\n)*?[ \t]+replicas: *)\d+"
        section, n = re.subn(pattern, lambda m: (m.group(1) or m.group(2)) + str(count), section, count=1)
        if n != 1:
            fail(f"service `{name}`: no `replicas:` field found to set")
    return head + sep + section + sep2 + tail


def print_rows(rows, cuts):
    w = csv.writer(sys.stdout, lineterminator="\n")
    bounds = ["0"] + [f"{c:g}s" for c in cuts] + ["end"]
    intervals = [f"points_{a}_{b}" for a, b in zip(bounds, bounds[1:])]
    w.writerow(["run", "policy", "seeds", "cost", "slo_violation_pct"] + intervals)
    for r in rows:
        w.writerow([r[0], r[1], r[2]] + [f"{x:.4f}" for x in r[3:]])


def cmd_split(args):
    print_rows([(run, *split(run, args.at)) for run in args.runs], args.at)


def cmd_static(args):
    scenario = args.scenario
    if not os.path.isfile(scenario):
        fail(f"no such scenario: {scenario}")
    text = open(scenario).read()
    services = service_names(text)
    if not services:
        fail(f"{scenario}: no services found")
    allocs = [parse_alloc(a, services, scenario) for a in args.alloc]
    # The written scenarios sit in OUT, so a trace file named by a relative path is made absolute.
    scenario_dir = os.path.dirname(os.path.abspath(scenario))
    text = re.sub(r"^( *file: *)([^/ \n][^ \n]*)", lambda m: m.group(1) + os.path.normpath(os.path.join(scenario_dir, m.group(2))), text, flags=re.M)
    binary = os.environ.get("SCALESIM", os.path.join(ROOT, "target", "release", "scalesim"))
    if not os.access(binary, os.X_OK):
        fail(f"no scalesim binary at {binary} (cargo build --release, or set SCALESIM)")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for alloc in allocs:
        label = "+".join(f"{n}={c}" for n, c in alloc.items())
        # Named by the allocation, so a rerun resumes only the runs of the same allocation.
        stem = "-".join(f"{n}{c}" for n, c in sorted(alloc.items()))
        path = os.path.join(args.out, f"{stem}.yaml")
        with open(path, "w") as f:
            f.write(f"# {scenario} with replicas held from 0 s: {label} (scripts/held_capacity.py).\n")
            f.write(with_replicas(text, alloc))
        splits = []
        for seed in args.seeds:
            run = os.path.join(args.out, "runs", stem, f"s{seed}")
            if not os.path.isfile(os.path.join(run, "summary.json")):
                cmd = [binary, "run", path, "--policy", "static", "--seed", str(seed), "--out", run, "-q", "--force"]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    fail(f"{' '.join(cmd)}: {done.stderr.strip()}")
            splits.append(split(run, args.at)[2:])
        means = [sum(s[i] for s in splits) / len(splits) for i in range(len(splits[0]))]
        rows.append((label, "static", " ".join(map(str, args.seeds)), *means))
    print_rows(rows, args.at)


def times(text):
    """`--at`'s comma-separated times."""
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated seconds (e.g. 60,100)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("split", help="split run folders' SLO violation at a time")
    sp.add_argument("--at", type=times, default=[100.0], help="rising times in seconds, comma-separated (default 100)")
    sp.add_argument("runs", nargs="+", help="run folders (with summary.json and requests.csv)")
    st = sub.add_parser("static", help="run allocations held from 0 s, and split them")
    st.add_argument("scenario")
    st.add_argument("out")
    st.add_argument("--alloc", action="append", required=True, help="NAME=COUNT,... (repeat for more)")
    st.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    st.add_argument("--at", type=times, default=[100.0], help="rising times in seconds, comma-separated (default 100)")
    args = ap.parse_args()
    if any(t <= 0 for t in args.at) or any(b <= a for a, b in zip(args.at, args.at[1:])):
        fail(f"--at {','.join(f'{t:g}' for t in args.at)}: times in seconds, above 0 and rising")
    {"split": cmd_split, "static": cmd_static}[args.cmd](args)


if __name__ == "__main__":
    main()
