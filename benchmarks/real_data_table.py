"""The table of docs/results.md ("The reference recipes, three seeds") from the runs of benchmarks/real_data.sh:
mean +- std over the finished seeds of each group (run directories named GROUP-sSEED, e.g. t15-s1).

    python benchmarks/real_data_table.py [RUNS]"""
import json, statistics, sys
from pathlib import Path
root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/real")
groups = {"t15": "Twitter-2015 MABSA, text path", "b15": "Twitter-2015 MABSA, blank-image branch",
          "h15": "Twitter-2015 MABSA, text path, head_lr 1e-3",
          "c15": "Twitter-2015 MABSA, text path, CRF batch mean",
          "t17": "Twitter-2017 MABSA, text path", "b17": "Twitter-2017 MABSA, blank-image branch",
          "h17": "Twitter-2017 MABSA, text path, head_lr 1e-3",
          "c17": "Twitter-2017 MABSA, text path, CRF batch mean",
          "m15": "Twitter-2015 MNER, text path", "m17": "Twitter-2017 MNER, text path"}
def ms(values):
    if not values: return "-"
    mean = statistics.mean(values)
    return f"{mean:.1f}" + (f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else "")
print("| setting | seeds | dev P | dev R | dev F1 | test P | test R | test F1 | aspect F1 | sentiment acc | best / run epochs | s per epoch |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for key, name in groups.items():
    runs = sorted(p for p in root.glob(f"{key}-s*") if (p / "metrics.json").exists())
    if not runs: continue
    m = [json.loads((p / "metrics.json").read_text()) for p in runs]
    logs = [[json.loads(l) for l in (p / "log.jsonl").read_text().splitlines() if l.strip()] for p in runs]
    get = lambda split, k: [x[split].get(k) for x in m if x[split].get(k) is not None]
    seconds = [r["seconds"] for log in logs for r in log]
    epochs = ", ".join(f"{x['best_epoch']}/{x['epochs']}" for x in m)
    seeds = ",".join(p.name.split("-s")[1] for p in runs)
    aspect = ms(get("test", "aspect_f1")) if get("test", "aspect_f1") else "-"
    sentiment = ms(get("test", "sentiment_accuracy")) if get("test", "sentiment_accuracy") else "-"
    print(f"| {name} | {seeds} | {ms(get('dev','precision'))} | {ms(get('dev','recall'))} | {ms(get('dev','f1'))} | "
          f"{ms(get('test','precision'))} | {ms(get('test','recall'))} | {ms(get('test','f1'))} | {aspect} | {sentiment} | "
          f"{epochs} | {statistics.median(seconds):.0f} |")
