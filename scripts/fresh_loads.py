#!/usr/bin/env python3
"""Writes Online Boutique loads that no agent setting was chosen on, into a folder outside the
bundled scenarios, for checking that a result carries over to loads the repository does not
contain:

    python3 scripts/fresh_loads.py OUT            # the three loads results.md reports
    python3 scripts/fresh_loads.py OUT --seed 5   # four new ones, drawn from the four families
    for n in 1 2 3; do python3 scripts/fresh_loads.py POOL --seed $n --prefix d$n; done
                                                  # a pool of drawn loads in one folder
    EVAL_SCENARIOS="$(ls OUT/*.yaml)" AGENTS=gat scripts/agents_vs_hpa.sh

The families (none is a training shape, a validation load or an evaluation load):

- `fresh_mmpp`: an MMPP request trace (`scripts/make_validation_trace.py`'s process) from another
  seed, in smaller batches than the validation trace's;
- `fresh_spikes`: a low base of users with short spikes (15-25 s) under Poisson arrivals;
- `fresh_gamma_wave`: a slow wave up and down under gamma arrivals (bursty gaps);
- `fresh_surge` (drawn sets only): one or two surges that ramp up over 30-150 s to a level held
  for 3-6 minutes and ramp back down, under Poisson or gamma arrivals. Added after the issue's
  evaluation showed that none of the other families holds a high load for minutes (the rush
  evaluation load does: a step from 100 to 800 RPS held 300 s); no surge here is a step, and its
  levels, times and arrivals are drawn. Its draws come from their own stream, so the other three
  loads of a seed are those drawn before it existed.

Without `--seed` the files are those of the fresh-load tables in
`reports/agents_vs_hpa/results.md` (MMPP seed 777001, batches of 5; five spikes of 500-750 users
over 180; a wave 120 -> 650 -> 120 users at cv 3; no surge). With `--seed N` every level, time
and duration is drawn from N instead: a check no one has seen before it runs. The application,
cluster and SLO are those of the validation scenarios (`scenarios/validation/`).
"""
import argparse
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_validation_trace import mmpp_times, write_trace  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
VALIDATION = os.path.join(ROOT, "scenarios", "validation")
HEADER = (
    "# A fresh load (scripts/fresh_loads.py): not a training, validation or evaluation load.\n"
    "# Generated; {how}.\n"
)


def published():
    """The loads of results.md's fresh-load tables."""
    spikes = [(120, 180), (20, 600), (110, 180), (15, 750), (160, 180), (25, 500)]
    spikes += [(90, 180), (20, 700), (200, 180), (15, 650), (125, 180)]
    return dict(
        mmpp_seed=777001,
        mmpp_rows_per_s=40.0,
        mmpp_batch=5,
        spikes=spikes,
        wave=dict(base=120, peak=650, cv=3.0, ramp_s=300, hold_s=180, lead_s=120, spawn=2),
    )


def drawn(seed):
    """Three loads of the same families, every parameter drawn from `seed`."""
    rng = random.Random(seed)
    batch = rng.choice([4, 5, 6, 8])
    base = rng.randint(150, 220)
    spikes = [(rng.randint(90, 150), base)]
    for _ in range(rng.randint(4, 6)):
        spikes.append((rng.randint(15, 25), rng.randint(450, 800)))
        spikes.append((rng.randint(80, 220), base))
    wave = dict(
        base=rng.randint(100, 150),
        peak=rng.randint(550, 700),
        cv=round(rng.uniform(2.0, 4.0), 2),
        ramp_s=rng.randint(200, 320),
        hold_s=rng.randint(120, 240),
        lead_s=rng.randint(90, 150),
    )
    # Users come and go at the rate that makes each ramp last its duration.
    wave["spawn"] = round((wave["peak"] - wave["base"]) / wave["ramp_s"], 2)
    # About 200 RPS whatever the batch size, as the published trace.
    return dict(
        mmpp_seed=seed,
        mmpp_rows_per_s=200.0 / batch,
        mmpp_batch=batch,
        spikes=spikes,
        wave=wave,
        surge=drawn_surge(seed),
    )


def drawn_surge(seed):
    """The surge family's stages (duration, users, spawn rate or None) and arrivals, from a
    stream of its own (so adding the family left the other draws of every seed as they were)."""
    rng = random.Random(f"surge-{seed}")
    base = rng.randint(100, 180)
    stages = [(rng.randint(90, 180), base, 50.0)]
    for _ in range(rng.randint(1, 2)):
        peak, up, down = rng.randint(400, 750), rng.randint(30, 150), rng.randint(30, 150)
        stages.append((up, peak, round((peak - base) / up, 2)))
        stages.append((rng.randint(180, 360), peak, None))
        stages.append((down, base, round((peak - base) / down, 2)))
        stages.append((rng.randint(90, 180), base, None))
    if rng.random() < 0.5:
        return dict(stages=stages, arrivals="{ process: poisson }", arrivals_named="Poisson")
    cv = round(rng.uniform(1.5, 3.0), 2)
    return dict(stages=stages, arrivals=f"{{ process: gamma, cv: {cv} }}", arrivals_named=f"gamma arrivals cv {cv}")


def read(name):
    with open(os.path.join(VALIDATION, name)) as f:
        return f.read()


def renamed(text, name, description, how):
    """`text` (a validation scenario) under another name and description, its leading comment
    replaced by the fresh-load header."""
    body = text[text.index("format_version:") :]
    body = re.sub(r"(?m)^name: .*$", f"name: {name}", body, count=1)
    body = re.sub(r'(?m)^description: .*$', f'description: "{description}"', body, count=1)
    return HEADER.format(how=how) + body


def with_stages(text, arrivals, stages):
    """`text` with its workload's arrivals and stages replaced (the stages end the file)."""
    text = re.sub(r"(?m)^  arrivals: .*$", f"  arrivals: {arrivals}", text, count=1)
    head = text[: text.index("  stages:\n")]
    rows = [f"    - {{ duration_s: {d}, users: {u}{extra} }}" for (d, u, extra) in stages]
    return head + "  stages:\n" + "\n".join(rows) + "\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    print(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder to write into (created; keep it outside scenarios/)")
    ap.add_argument("--seed", type=int, help="draw new loads from this seed (default: the published ones)")
    ap.add_argument(
        "--prefix",
        default="",
        help="put PREFIX_ before every scenario name, file and trace, so several sets share a folder",
    )
    args = ap.parse_args()
    if args.prefix and not re.fullmatch(r"[A-Za-z0-9-]+", args.prefix):
        ap.error(f"--prefix {args.prefix!r}: use letters, digits and '-' only (it names files)")
    pre = f"{args.prefix}_" if args.prefix else ""
    p = published() if args.seed is None else drawn(args.seed)
    how = "the published fresh loads" if args.seed is None else f"drawn from seed {args.seed}"
    os.makedirs(os.path.join(args.out, "traces"), exist_ok=True)

    rows = mmpp_times(p["mmpp_seed"], p["mmpp_rows_per_s"])
    write_trace(os.path.join(args.out, "traces", f"{pre}mmpp_fresh.csv"), rows)
    mmpp = renamed(
        read("ob_mmpp_trace.yaml"),
        f"{pre}fresh_mmpp",
        f"fresh: MMPP seed {p['mmpp_seed']}, batches of {p['mmpp_batch']}, about 200 RPS",
        how,
    )
    mmpp = mmpp.replace("file: traces/mmpp_bursts.csv", f"file: traces/{pre}mmpp_fresh.csv")
    mmpp = re.sub(r"(?m)^    rate_scale: \d+$", f"    rate_scale: {p['mmpp_batch']}", mmpp, count=1)
    mmpp = re.sub(r"(?m)^  # \d[\d,]* rows in .*\n", "", mmpp)
    write(os.path.join(args.out, f"{pre}fresh_mmpp.yaml"), mmpp)

    flash = read("ob_flash_crowds.yaml")
    spikes = p["spikes"]
    n, low = len(spikes) // 2, spikes[0][1]
    peaks = [u for _, u in spikes[1::2]]
    stages = [(d, u, ", spawn_rate: 50" if k == 0 else "") for k, (d, u) in enumerate(spikes)]
    desc = f"fresh: {low} users with {n} spikes (15-25 s) of {min(peaks)}-{max(peaks)} users, Poisson"
    write(
        os.path.join(args.out, f"{pre}fresh_spikes.yaml"),
        with_stages(renamed(flash, f"{pre}fresh_spikes", desc, how), "{ process: poisson }", stages),
    )

    w = p["wave"]
    stages = [
        (w["lead_s"], w["base"], ", spawn_rate: 50"),
        (w["ramp_s"], w["peak"], f", spawn_rate: {w['spawn']}"),
        (w["hold_s"], w["peak"], ""),
        (w["ramp_s"], w["base"], f", spawn_rate: {w['spawn']}"),
    ]
    desc = f"fresh: a wave {w['base']} -> {w['peak']} -> {w['base']} users, gamma arrivals cv {w['cv']}"
    write(
        os.path.join(args.out, f"{pre}fresh_gamma_wave.yaml"),
        with_stages(renamed(flash, f"{pre}fresh_gamma_wave", desc, how), f"{{ process: gamma, cv: {w['cv']} }}", stages),
    )

    if "surge" in p:
        sg = p["surge"]
        stages = [(d, u, "" if rate is None else f", spawn_rate: {rate}") for (d, u, rate) in sg["stages"]]
        held = [(d, u) for (d, u, rate) in sg["stages"][2::4]]
        levels = ", ".join(f"{u} users for {d} s" for d, u in held)
        desc = f"fresh: {sg['stages'][0][1]} users with surges ramped to {levels}, {sg['arrivals_named']}"
        write(
            os.path.join(args.out, f"{pre}fresh_surge.yaml"),
            with_stages(renamed(flash, f"{pre}fresh_surge", desc, how), sg["arrivals"], stages),
        )


if __name__ == "__main__":
    main()
