"""Plots held-out reward accuracy and log-odds ratio of ORPO runs (from their metrics.jsonl).
    python3 plot.py OUT.png LABEL=RUN_DIR/metrics.jsonl [LABEL=...]"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

out, runs = sys.argv[1], [a.rsplit("=", 1) for a in sys.argv[2:]]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
for label, src in runs:
    ev = [json.loads(l) for l in open(src) if '"kind":"eval"' in l.replace(" ", "")]
    steps = [r["step"] for r in ev]
    a.plot(steps, [r["metrics"]["Reward Accuracy"] for r in ev], "o-", label=label)
    b.plot(steps, [r["metrics"]["Log Odds Chosen"] for r in ev], "o-", label=label)
    for r in ev:
        m = r["metrics"]
        print(f"{label} step {r['step']:>4}: accuracy {m['Reward Accuracy']:.4f}  margin {m['Reward Margin']:.4f}  "
              f"log-odds {m['Log Odds Chosen']:.4f}  odds-ratio loss {m['Odds Ratio Loss']:.4f}  NLL {m['NLL']:.4f}")
a.axhline(0.5, color="grey", ls="--", label="chance")
a.set(xlabel="ORPO step (after 150 SFT steps)", ylabel="reward accuracy", title="Held-out pairs: reward accuracy")
b.set(xlabel="ORPO step", ylabel="mean log odds(chosen) − log odds(rejected)", title="Held-out log-odds ratio")
a.legend()
b.legend()
fig.tight_layout()
fig.savefig(out, dpi=110)
