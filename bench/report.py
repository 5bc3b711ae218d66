#!/usr/bin/env python3
"""bench/report.py -- render bench/report/README.md and its SVG plots from
the raw results bench/report.sh collected:

  raw/bench.txt    one line per run of run.sh: WORKLOAD ALLOCATOR REP SECONDS PEAK_RSS_KB
  raw/sparse.txt   one line per sparse_heap run: ALLOCATOR TOUCH% TOUCHED_MIB LOCKED_MIB VMLCK_MIB RSS_MIB
  rt/              bench/rt.sh's output: *.txt (RESULT lines), *.q (quantiles)
  raw/*.md         further tables pasted as they are (databases)

  report.py DIR            writes DIR/README.md, DIR/*.svg (gnuplot, when installed)

Ratios are lofalloc's median over the best peer's median on the same
workload in the same run ("free": peers as they are; "locked": peers under
mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT)), and their geometric mean.
The spread is the smallest and largest of the repetitions."""
import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict


def median(xs):
    s = sorted(xs)
    return s[(len(s) - 1) // 2] if s else float("nan")


def read_bench(path):
    runs = defaultdict(lambda: ([], []))  # (workload, allocator) -> (times, rss)
    order_w, order_a = [], []
    if not os.path.exists(path):
        return runs, order_w, order_a
    for line in open(path):
        f = line.split()
        if len(f) < 5 or f[3] == "inf":
            continue
        w, a = f[0], f[1]
        if w not in order_w:
            order_w.append(w)
        if a not in order_a:
            order_a.append(a)
        runs[(w, a)][0].append(float(f[3]))
        runs[(w, a)][1].append(float(f[4]) / 1024.0)
    return runs, order_w, order_a


def best_peer(runs, w, allocs, locked, idx):
    best = None
    for a in allocs:
        if a == "lofalloc" or a.endswith("-locked") != locked:
            continue
        vals = runs.get((w, a))
        if not vals or not vals[idx]:
            continue
        m = median(vals[idx])
        if best is None or m < best[1]:
            best = (a, m)
    return best


def gm(xs):
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def bench_section(d, out, plots):
    runs, ws, allocs = read_bench(os.path.join(d, "raw", "bench.txt"))
    if not ws:
        out.append("No `make bench` results (raw/bench.txt).\n")
        return
    reps = max(len(v[0]) for v in runs.values())
    out.append("## `make bench`: lofalloc against the best peer, per workload\n")
    out.append(f"Medians of {reps} interleaved repetitions; the spread is min–max of lofalloc's runs.\n")
    out.append("| workload | lofalloc time (s) | spread | best peer (free) | time ratio | best peer (locked) | time ratio | RSS ratio (free) | RSS ratio (locked) |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ratios = defaultdict(list)
    rows = []
    for w in ws:
        lt, lm = runs.get((w, "lofalloc"), ([], []))
        if not lt:
            continue
        t, m = median(lt), median(lm)
        bf, bl = best_peer(runs, w, allocs, False, 0), best_peer(runs, w, allocs, True, 0)
        rf, rl = best_peer(runs, w, allocs, False, 1), best_peer(runs, w, allocs, True, 1)
        r = [t / bf[1] if bf else float("nan"), t / bl[1] if bl else float("nan"),
             m / rf[1] if rf else float("nan"), m / rl[1] if rl else float("nan")]
        for k, v in zip(("tf", "tl", "mf", "ml"), r):
            ratios[k].append(v)
        rows.append((w, r))
        out.append(f"| {w} | {t:.3f} | {min(lt):.3f}–{max(lt):.3f} | {bf[0] if bf else '-'} {bf[1] if bf else 0:.3f} | "
                   f"{r[0]:.2f}× | {bl[0] if bl else '-'} {bl[1] if bl else 0:.3f} | {r[1]:.2f}× | {r[2]:.2f}× | {r[3]:.2f}× |")
    out.append(f"| **geometric mean** | | | | **{gm(ratios['tf']):.2f}×** | | **{gm(ratios['tl']):.2f}×** | "
               f"**{gm(ratios['mf']):.2f}×** | **{gm(ratios['ml']):.2f}×** |\n")
    out.append("Every allocator, median time in seconds and peak RSS in MiB:\n")
    out.append("| workload | " + " | ".join(allocs) + " |")
    out.append("| --- |" + " --- |" * len(allocs))
    for w in ws:
        cells = []
        for a in allocs:
            v = runs.get((w, a))
            cells.append(f"{median(v[0]):.3f} s, {median(v[1]):.0f} M" if v and v[0] else "-")
        out.append(f"| {w} | " + " | ".join(cells) + " |")
    out.append("")
    dat = os.path.join(d, "ratios.dat")
    with open(dat, "w") as f:
        f.write("workload time_free time_locked rss_free rss_locked\n")
        for w, r in rows:
            f.write(w + " " + " ".join(f"{x:.4f}" for x in r) + "\n")
    plots.append(("ratios-time.svg", "lofalloc time / best peer (1 = as fast)", dat, [(2, "peers free"), (3, "peers locked")]))
    plots.append(("ratios-rss.svg", "lofalloc peak RSS / best peer (1 = as small)", dat, [(4, "peers free"), (5, "peers locked")]))
    out.append("![time ratios](ratios-time.svg) ![RSS ratios](ratios-rss.svg)\n")


def sparse_section(d, out, gp):
    path = os.path.join(d, "raw", "sparse.txt")
    if not os.path.exists(path):
        return
    series = defaultdict(list)
    for line in open(path):
        f = line.split()
        if len(f) >= 6:
            series[f[0]].append(tuple(float(x) for x in f[1:6]))
    if not series:
        return
    out.append("## Locked-resident memory against memory touched (`examples/sparse_heap`)\n")
    out.append("| allocator | touched % | touched MiB | locked-resident MiB | VmLck MiB | RSS MiB |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    plot = []
    for a, pts in series.items():
        dat = os.path.join(d, f"sparse-{a}.dat")
        with open(dat, "w") as f:
            for p in sorted(pts):
                out.append(f"| {a} | {p[0]:g} | {p[1]:.1f} | {p[2]:.1f} | {p[3]:.1f} | {p[4]:.1f} |")
                f.write(f"{p[1]} {p[2]}\n")
        plot.append(f"'{dat}' using 1:2 with linespoints title '{a}'")
    out.append("\n![locked vs touched](sparse.svg)\n")
    gp.append(f"""set output '{os.path.join(d, "sparse.svg")}'
set title 'locked-resident vs touched'
set xlabel 'touched (MiB)'
set ylabel 'locked resident (MiB)'
set key top left
unset logscale
plot {", ".join(plot)}
""")


def rt_section(d, out, gp):
    rt = os.path.join(d, "rt")
    if not os.path.isdir(rt):
        return
    res = []
    for name in sorted(os.listdir(rt)):
        if name.endswith(".txt"):
            for line in open(os.path.join(rt, name)):
                if line.startswith("RESULT"):
                    res.append(line.split()[1:])
    if not res:
        return
    out.append("## `make bench-rt`: the paced real-time loop beside `stress-ng --vm 1`\n")
    out.append("| allocator | minor faults | major faults | malloc p50 | p99 | p99.9 | p99.99 | max | free p50 | p99 | p99.9 | p99.99 | max |")
    out.append("| --- |" + " --- |" * 12)
    for r in res:
        out.append("| " + " | ".join(r) + " |")
    out.append("\n(latencies in ns; faults counted by getrusage over the timed phase; the maxima are this VM's own wake-up jitter)\n")
    plot = []
    for name in sorted(os.listdir(rt)):
        if name.endswith(".q"):
            label = name[:-2]
            dat = os.path.join(d, f"rt-{label}.dat")
            with open(dat, "w") as f:
                for line in open(os.path.join(rt, name)):
                    q = line.split()
                    if len(q) >= 3 and q[0] == "malloc":
                        f.write(f"{q[2]} {q[1]}\n")
            plot.append(f"'{dat}' using 1:2 with lines title '{label}'")
    if plot:
        out.append("![malloc latency CDF](rt-cdf.svg)\n")
        gp.append(f"""set output '{os.path.join(d, "rt-cdf.svg")}'
set title 'malloc latency CDF, paced loop'
set logscale x
set xlabel 'malloc latency (ns)'
set ylabel 'fraction of calls'
set key bottom right
plot {", ".join(plot)}
unset logscale
""")


def bars(d, plots, gp):
    for svg, title, dat, cols in plots:
        series = ", ".join(f"'{dat}' using {c}:xtic(1) title '{t}'" for c, t in cols)
        gp.append(f"""set output '{os.path.join(d, svg)}'
set title '{title}'
set style data histograms
set style histogram clustered
set style fill solid 0.6
set xtics rotate by -30
set ylabel 'ratio'
set key top left
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2
plot {series}
unset arrow
set style data lines
set xtics norotate
""")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    out, plots, gp = [], [], []
    head = os.path.join(d, "raw", "machine.txt")
    out.append("# lofalloc benchmark report\n")
    out.append("Written by `make bench-report` (bench/report.sh); every number below comes from the raw files in this folder.\n")
    if os.path.exists(head):
        out.append("```\n" + open(head).read().strip() + "\n```\n")
    bench_section(d, out, plots)
    sparse_section(d, out, gp)
    rt_section(d, out, gp)
    for name in sorted(os.listdir(os.path.join(d, "raw"))) if os.path.isdir(os.path.join(d, "raw")) else []:
        if name.endswith(".md"):
            out.append(open(os.path.join(d, "raw", name)).read())
    bars(d, plots, gp)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    if gp and shutil.which("gnuplot"):
        script = "set terminal svg size 900,500 dynamic\n" + "\n".join(gp)
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if r.returncode != 0:
            print("report.py: gnuplot failed:\n" + r.stderr, file=sys.stderr)
            return 1
    elif gp:
        print("report.py: gnuplot not installed: no plots (tools/deps.sh --bench)", file=sys.stderr)
    print(f"report: {os.path.join(d, 'README.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
