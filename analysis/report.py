#!/usr/bin/python3
"""Plots and a Markdown report of one rlaif run directory.

usage: analysis/report.py RUN_DIR [--compare OTHER_RUN_DIR] [--out DIR]

Reads RUN_DIR/metrics.h5 (docs/RUNFILES.md) and writes into RUN_DIR/report/ (or --out):
  reward.png      RL reward (score used, reward-model score, reward minus KL) per iteration
  kl.png          KL to the reference per response, and the KL coefficient
  win_rate.png    win rates of the trained policy against SFT (gold rater, judge), and against
                  the --compare run's policy when the eval measured it
  alignment.png   labeller and reward-model agreement: judge vs gold, reward model vs judge and
                  vs gold (validation curves)
  length.png      response length and EOS rate during RL, with the eval's SFT length
  phases.png      wall time per stage, and RL time per phase (generate, score wait, train)
  training.png    PPO diagnostics: entropy, approx-KL, clip fraction, value loss, explained
                  variance, gradient norm
  report.md       the summary table, the plots, stage times, sample responses side by side
With --compare, the summary table gets a column for the other run (e.g. RLAIF vs RLHF).

Needs Debian's h5py and matplotlib (/usr/bin/python3); nothing is written to RUN_DIR besides
the report directory."""
import argparse
import math
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_run(run_dir):
    path = os.path.join(run_dir, "metrics.h5")
    if not os.path.exists(path):
        sys.exit("report: %s does not exist (is %s a run directory?)" % (path, run_dir))
    run = {"dir": run_dir, "series": {}, "summary": {}, "samples": {}, "attrs": {}}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            run["attrs"][k] = v.decode() if isinstance(v, bytes) else v

        def walk(group, prefix, fn):
            for name, obj in group.items():
                full = prefix + name
                if isinstance(obj, h5py.Group):
                    walk(obj, full + "/", fn)
                else:
                    fn(full, obj)

        if "metrics" in f:
            def series(name, d):
                try:
                    a = d[:]
                    run["series"][name] = (list(a["step"]), list(a["value"]))
                except (KeyError, ValueError, OSError):
                    pass
            walk(f["metrics"], "", series)
        if "summary" in f:
            def summ(name, d):
                v = d[()]
                if isinstance(v, bytes):
                    v = v.decode()
                run["summary"][name] = v
            walk(f["summary"], "", summ)
        if "samples" in f:
            def samp(name, d):
                try:
                    cells = d.asstr()[()]
                except (TypeError, ValueError):
                    return
                cols = d.attrs.get("columns")
                if cols is not None:
                    cols = [c.decode() if isinstance(c, bytes) else str(c) for c in cols]
                run["samples"][name] = (cols, cells)
            walk(f["samples"], "", samp)
        if "config/deck_yaml" in f:
            run["deck"] = f["config/deck_yaml"].asstr()[()]
    return run


def s(run, name):
    return run["series"].get(name)


def fmt(v):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (int,)) or (abs(v) >= 1000 and float(v).is_integer()):
        return "%d" % v
    return "%.4g" % v


def plot_lines(ax, run, names, labels=None):
    drawn = 0
    for i, n in enumerate(names):
        d = s(run, n)
        if d and d[0]:
            ax.plot(d[0], d[1], label=(labels[i] if labels else n), lw=1.2)
            drawn += 1
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    return drawn


def save(fig, out, name):
    p = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return name


def plots(run, other, out):
    made = []
    fig, ax = plt.subplots(figsize=(7, 4))
    plot_lines(ax, run, ["rl/reward", "rl/rm_score", "rl/reward_minus_kl"],
               ["score (after no-EOS penalty)", "reward-model score", "score - beta KL"])
    ax.set_xlabel("RL iteration")
    ax.set_ylabel("per response (normalised units)")
    ax.set_title("Reward during RL")
    made.append(("Reward", save(fig, out, "reward.png")))

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    plot_lines(ax[0], run, ["rl/kl"], ["KL(policy || SFT) per response (nats)"])
    ax[0].set_xlabel("RL iteration")
    plot_lines(ax[1], run, ["rl/kl_coef"], ["beta"])
    ax[1].set_xlabel("RL iteration")
    fig.suptitle("KL to the reference policy")
    made.append(("KL", save(fig, out, "kl.png")))

    fig, ax = plt.subplots(figsize=(7, 4))
    bars, vals = [], []
    for label, key, r in (("gold vs SFT", "win_rate_gold_vs_sft", run),
                          ("judge vs SFT", "win_rate_judge_vs_sft", run),
                          ("gold vs other", "win_rate_gold_vs_versus", run),
                          ("judge vs other", "win_rate_judge_vs_versus", run)):
        v = r["summary"].get(key)
        if isinstance(v, float) and not math.isnan(v):
            bars.append(label)
            vals.append(v)
    if other:
        for label, key in (("other: gold vs SFT", "win_rate_gold_vs_sft"),
                           ("other: judge vs SFT", "win_rate_judge_vs_sft")):
            v = other["summary"].get(key)
            if isinstance(v, float) and not math.isnan(v):
                bars.append(label)
                vals.append(v)
    if bars:
        ax.bar(range(len(bars)), vals, color="tab:blue")
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels(bars, rotation=15, fontsize=8)
        for i, v in enumerate(vals):
            ax.text(i, v + 0.01, "%.3f" % v, ha="center", fontsize=8)
    ax.axhline(0.5, color="gray", ls="--", lw=1)
    ax.set_ylim(0, 1)
    ax.set_title("Win rate of the trained policy")
    made.append(("Win rate", save(fig, out, "win_rate.png")))

    fig, ax = plt.subplots(figsize=(7, 4))
    n = plot_lines(ax, run, ["reward/val_accuracy_judge", "reward/val_accuracy_gold",
                             "reward/accuracy"],
                   ["reward model vs judge (validation)", "reward model vs gold (validation)",
                    "reward model vs training labels (batch)"])
    for key, label, c in (("judge_alignment_gold", "judge vs gold (held out)", "tab:red"),
                          ("label_alignment_gold", "labels vs gold", "tab:purple")):
        v = run["summary"].get(key)
        if isinstance(v, float) and not math.isnan(v):
            ax.axhline(v, color=c, ls="--", lw=1, label=label)
            n += 1
    if n:
        ax.legend(fontsize=8)
    ax.set_xlabel("reward-model step")
    ax.set_ylabel("agreement")
    ax.set_title("Labeller and reward-model alignment")
    made.append(("Alignment", save(fig, out, "alignment.png")))

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    plot_lines(ax[0], run, ["rl/response_length"], ["response tokens (RL samples)"])
    v = run["summary"].get("eval_response_tokens_sft")
    if isinstance(v, float):
        ax[0].axhline(v, color="gray", ls="--", lw=1, label="SFT (eval)")
        ax[0].legend(fontsize=8)
    ax[0].set_xlabel("RL iteration")
    plot_lines(ax[1], run, ["rl/eos_rate"], ["share of responses ending with EOS"])
    ax[1].set_xlabel("RL iteration")
    ax[1].set_ylim(0, 1.05)
    fig.suptitle("Response length")
    made.append(("Response length", save(fig, out, "length.png")))

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    stages = [(k[len("time/"):-len("_seconds")], v) for k, v in run["summary"].items()
              if k.startswith("time/") and k.endswith("_seconds")]
    order = ["sft", "judge_sft", "label", "reward", "rl", "eval"]
    stages.sort(key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)
    if stages:
        ax[0].barh([k for k, _ in stages], [v for _, v in stages], color="tab:green")
        for i, (_, v) in enumerate(stages):
            ax[0].text(v, i, " %.0f s" % v, va="center", fontsize=8)
    ax[0].invert_yaxis()
    ax[0].set_xlabel("seconds")
    ax[0].set_title("Wall time per stage")
    d = [s(run, n) for n in ("rl/time_generate", "rl/time_score_wait", "rl/time_train")]
    if all(d):
        steps = d[0][0]
        ax[1].stackplot(steps, d[0][1], d[1][1], d[2][1],
                        labels=["generate", "wait for scores", "train (incl. ref/value)"])
        ax[1].legend(fontsize=8, loc="upper left")
    ax[1].set_xlabel("RL iteration")
    ax[1].set_ylabel("seconds")
    ax[1].set_title("RL time per phase")
    made.append(("Time per phase", save(fig, out, "phases.png")))

    fig, axs = plt.subplots(2, 3, figsize=(12, 6))
    for ax, (n, lab) in zip(axs.flat, (("rl/entropy", "entropy per token"),
                                       ("rl/approx_kl", "approx KL (old||new)"),
                                       ("rl/clipfrac", "clip fraction"),
                                       ("rl/value_loss", "value loss"),
                                       ("rl/explained_variance", "explained variance"),
                                       ("rl/grad_norm", "policy gradient norm"))):
        plot_lines(ax, run, [n], [lab])
        ax.set_xlabel("RL iteration")
    fig.suptitle("PPO diagnostics")
    made.append(("PPO diagnostics", save(fig, out, "training.png")))
    return made


KEY_ORDER = ["win_rate_gold_vs_sft", "win_rate_judge_vs_sft", "win_rate_gold_vs_versus",
             "win_rate_judge_vs_versus", "kl_to_sft", "eval_gold_score_rl", "eval_gold_score_sft",
             "eval_response_tokens_rl", "eval_response_tokens_sft", "rm_accuracy_judge",
             "rm_accuracy_gold", "judge_alignment_gold", "sft_gold_score_mean", "wall_seconds"]


def md_escape(t):
    return str(t).replace("|", "\\|").replace("\n", " ")


def report(run, other, out, made):
    lines = ["# rlaif run report: %s" % run["dir"], ""]
    a = run["attrs"]
    lines.append("status **%s**, started %s, ended %s, attempts %s" % (
        a.get("status", "?"), a.get("start_time", "?"), a.get("end_time", "?"),
        a.get("attempts", "?")))
    lines += ["", "## Summary", ""]
    keys = [k for k in KEY_ORDER if k in run["summary"]]
    keys += sorted(k for k in run["summary"] if k not in keys and not k.startswith("time/"))
    if other:
        lines.append("| figure | %s | %s |" % (md_escape(run["dir"]), md_escape(other["dir"])))
        lines.append("| --- | ---: | ---: |")
        for k in keys:
            lines.append("| %s | %s | %s |" % (k, fmt(run["summary"][k]),
                                               fmt(other["summary"].get(k))))
    else:
        lines.append("| figure | value |")
        lines.append("| --- | ---: |")
        for k in keys:
            lines.append("| %s | %s |" % (k, md_escape(fmt(run["summary"][k]))))
    stages = [(k, v) for k, v in run["summary"].items() if k.startswith("time/")]
    if stages:
        lines += ["", "## Wall time per stage", "", "| stage | seconds |", "| --- | ---: |"]
        order = ["sft", "judge_sft", "label", "reward", "rl", "eval"]
        stages.sort(key=lambda kv: order.index(kv[0][5:-8]) if kv[0][5:-8] in order else 99)
        for k, v in stages:
            lines.append("| %s | %.1f |" % (k[5:-8], v))
        lines.append("| **sum of the stages** | %.1f |" % sum(v for _, v in stages))
        if "wall_seconds" in run["summary"]:
            lines.append("| wall time of the last attempt | %.1f |" % run["summary"]["wall_seconds"])
    lines += ["", "## Plots", ""]
    for title, name in made:
        lines += ["### %s" % title, "", "![%s](%s)" % (title, name), ""]
    samp = run["samples"].get("eval_samples")
    if samp:
        cols, cells = samp
        lines += ["## Sample responses (held-out documents)", ""]
        cols = cols or ["col%d" % i for i in range(len(cells[0]))]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + " --- |" * len(cols))
        for row in cells:
            lines.append("| " + " | ".join(md_escape(c) for c in row) + " |")
        lines.append("")
    rl_samples = sorted((k for k in run["samples"] if k.startswith("rl_step_")),
                        key=lambda k: int(k.split("_")[-1]))
    if rl_samples:
        lines += ["## RL samples during training", "", "| iteration | response | score |",
                  "| ---: | --- | ---: |"]
        for k in rl_samples:
            cols, cells = run["samples"][k]
            for row in (cells if getattr(cells, "ndim", 1) == 2 else [cells]):
                lines.append("| %s | %s | %s |" % (k.split("_")[-1], md_escape(row[1]),
                                                   md_escape(row[2])))
        lines.append("")
    p = os.path.join(out, "report.md")
    with open(p, "w") as f:
        f.write("\n".join(lines) + "\n")
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--compare", help="another run directory, shown side by side")
    ap.add_argument("--out", help="output directory (default RUN_DIR/report)")
    args = ap.parse_args()
    run = read_run(args.run_dir)
    other = read_run(args.compare) if args.compare else None
    out = args.out or os.path.join(args.run_dir, "report")
    os.makedirs(out, exist_ok=True)
    made = plots(run, other, out)
    p = report(run, other, out, made)
    print("report: %s (%d plots)" % (p, len(made)))


if __name__ == "__main__":
    main()
