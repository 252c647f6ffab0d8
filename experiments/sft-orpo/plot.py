"""Plots the held-out reward accuracy and margin of an ORPO run (from its metrics.jsonl)."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

src, out = sys.argv[1], sys.argv[2]
ev = [json.loads(l) for l in open(src) if '"kind":"eval"' in l.replace(" ", "")]
steps = [r["step"] for r in ev]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
a.plot(steps, [r["metrics"]["Reward Accuracy"] for r in ev], "o-")
a.axhline(0.5, color="grey", ls="--", label="chance")
a.set(xlabel="ORPO step", ylabel="reward accuracy (held-out pairs)", title="Reward accuracy")
a.legend()
b.plot(steps, [r["metrics"]["Reward Margin"] for r in ev], "o-", label="margin")
b.plot(steps, [r["metrics"]["Log Odds Chosen"] for r in ev], "s-", label="log odds ratio")
b.set(xlabel="ORPO step", title="Reward margin and log-odds ratio (held-out)")
b.legend()
fig.tight_layout()
fig.savefig(out, dpi=110)
for r in ev:
    m = r["metrics"]
    print(f"step {r['step']:>4}: accuracy {m['Reward Accuracy']:.4f}  margin {m['Reward Margin']:.4f}  "
          f"log-odds {m['Log Odds Chosen']:.4f}  NLL {m['NLL']:.4f}")
