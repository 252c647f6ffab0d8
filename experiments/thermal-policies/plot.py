"""Plots the thermal-policies experiment: temperature traces and tokens/hour against peak temperature.

Usage: python3 plot.py DIR   (reads DIR/traces.csv and DIR/sweep.csv, writes DIR/thermal-policies.png)
"""

import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

d = sys.argv[1] if len(sys.argv) > 1 else "."

traces = defaultdict(lambda: ([], []))
with open(f"{d}/traces.csv") as f:
    for row in csv.DictReader(f):
        if row["scenario"].startswith("Room at 25"):
            t, temp = traces[row["policy"]]
            t.append(float(row["time_s"]))
            temp.append(float(row["temp_c"]))

sweep = defaultdict(lambda: ([], []))
with open(f"{d}/sweep.csv") as f:
    for row in csv.DictReader(f):
        peak, tph = sweep[row["policy"]]
        peak.append(float(row["peak_c"]))
        tph.append(float(row["tokens_per_hour"]) / 1e6)

colors = {"unmanaged": "tab:gray", "hysteresis": "tab:red", "throttle": "tab:blue", "setpoint": "tab:green",
          "setpoint 88": "tab:olive"}
fig, (a, b) = plt.subplots(1, 2, figsize=(14, 5.2))
for name, (t, temp) in traces.items():
    a.plot(t, temp, label=name, color=colors.get(name), lw=1.3)
for y, label, style in [(90, "pause 90", "--"), (80, "resume / throttle start 80", ":"), (85, "set-point 85", "-."),
                        (100, "critical 100", "-")]:
    a.axhline(y, color="black", ls=style, lw=0.8, alpha=0.6)
    a.text(1195, y + 0.4, label, ha="right", fontsize=8)
a.set_xlim(0, 1200)
a.set_ylim(30, 108)
a.set_xlabel("simulated time (s)")
a.set_ylabel("temperature (°C)")
a.set_title("Simulated fanless laptop, room at 25 °C: first 20 minutes")
a.legend(loc="lower right", fontsize=9)

for name, (peak, tph) in sweep.items():
    b.plot(peak, tph, "o-", label=name, color=colors.get(name))
b.set_xlabel("peak temperature over the hour (°C)")
b.set_ylabel("tokens per hour (millions)")
b.set_title("Throughput against peak temperature (knob swept 70–95 °C)")
b.grid(alpha=0.3)
b.legend(fontsize=9)
fig.tight_layout()
fig.savefig(f"{d}/thermal-policies.png", dpi=110)
print(f"wrote {d}/thermal-policies.png")
