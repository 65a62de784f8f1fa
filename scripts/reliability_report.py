#!/usr/bin/env python3
"""Writes the results part of RELIABILITY.md from target/reliability/*.json."""
import datetime
import json
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..")
DIR = os.path.join(ROOT, "target", "reliability")


def load(name):
    path = os.path.join(DIR, f"{name}.json")
    if not os.path.exists(path):
        return None
    try:
        return json.load(open(path))
    except ValueError:
        return None


out = []
w = out.append
w(f"_Written by `scripts/reliability_report.py` from `target/reliability/*.json` on {datetime.date.today()}, "
  "on this project's 2-core machine. Reproduce with `scripts/reliability.sh` (everything) or "
  "`scripts/reliability.sh --quick` (the fast parts, which `scripts/test.sh` and so CI run)._\n")
w("### Races\n")
w("| backend | server processes | rounds | bursts (1,000 requests each) | bursts with exactly 100 successes | negative balances | `credits check` | failures |")
w("|---|---|---|---|---|---|---|---|")
for name in ("races-sqlite", "races-postgres", "races-postgres-3"):
    r = load(name)
    if not r:
        w(f"| {name} | not run | | | | | | |")
        continue
    s = r["summary"]
    w(f"| {s['backend']} | {s['instances']} | {s['rounds']} | {s['bursts']} | {s['bursts_with_exactly_the_affordable_successes']} "
      f"| {s['negative_balances']} | {'clean every round' if not r['failures'] else 'see failures'} | {len(r['failures'])} |")
w("\nEach round: a fresh user with 1,000 credits; 1,000 concurrent `deduct 10` and, for another user, 1,000 "
  "concurrent `hold 10`, once over 1,000 HTTP/1.1 connections and once as HTTP/2 streams multiplexed on one "
  "connection per server (h2c, prior knowledge); with three processes the requests alternate between them.\n")
w("### Replays\n")
for name in ("replays-sqlite", "replays-postgres"):
    r = load(name)
    if not r:
        continue
    s = r["summary"]
    c, k = s["creem"], s["clerk"]
    w(f"- {s['backend']}, {s['instances']} server processes: one Creem `checkout.completed` delivered "
      f"{c['deliveries']} times at once → {c['answered_200']} × 200, **{c['purchase_entries']} purchase entry**, "
      f"remaining {c['remaining']} (8 + 115); Clerk `user.created` delivered {k['deliveries_same_id']} times with one "
      f"svix-id and {k['deliveries_new_ids']} times with new ones → **{k['initial_entries']} initial grant**. "
      f"Failures: {len(r['failures'])}.")
w("\n### Crashes\n")
for name in ("crashes-sqlite", "crashes-postgres"):
    r = load(name)
    if not r:
        continue
    s = r["summary"]
    a = s["acknowledged_before_kills"]
    restarts = s["restart_to_healthy_ms"]
    w(f"- {s['backend']}: `kill -9` × {s['kills']} during a mixed load ({s['workers']} workers: deducts with "
      f"Idempotency-Keys, holds + captures with an API key, signed Creem webhooks). Acknowledged before the kills: "
      f"{a['spends']} spends, {a['holds']} holds, {a['captures']} captures, {a['payments']} payments — after each "
      f"restart every one of them was found (spends replay with `Idempotent-Replayed: true`; holds, captures and "
      f"payments are in their tables), and `credits check` (balance chain, per-entry figures, grants, holds, "
      f"payments) was clean. Restart to healthy: median {sorted(restarts)[len(restarts)//2]:.0f} ms. "
      f"Failures: {len(r['failures'])}.")
w("\n### Fuzzing\n")
w("The cargo-fuzz targets (`fuzz/fuzz_targets/`) run 10 minutes each in the full suite and 20 s each over "
  "the committed corpora in CI (`scripts/fuzz.sh`); the table, commands and raw libFuzzer lines are in "
  "`fuzz/RESULTS.md`.\n")
w("### Soak\n")
soaks = [r for r in (load("soak-sqlite"), load("soak-postgres")) if r]
for r in soaks:
    s = r["summary"]
    g = s["growth"]
    total = sum(s["requests"].values())
    w(f"- {s['backend']}: {s['minutes']} minutes, {s['workers']} workers of mixed load (deducts, reads, holds + "
      f"releases, history pages, signed webhooks): {total:,} requests, "
      + ", ".join(f"{k}: {v:,}" for k, v in sorted(s["requests"].items())) + ".")
    w(f"- RSS: minute 2 average {g['rss_kb']['minute_2_average']/1024:.1f} MB → last minute "
      f"{g['rss_kb']['last_minute_average']/1024:.1f} MB (growth {g['rss_kb']['growth']*100:+.1f} %); open files "
      f"{g['fds']['minute_2_average']:.0f} → {g['fds']['last_minute_average']:.0f} "
      f"(growth {g['fds']['growth']*100:+.1f} %). Failures: {len(r['failures'])}"
      + (": " + "; ".join(r["failures"]) if r["failures"] else "") + ".")
if not soaks:
    w("- not run yet")
text = open(os.path.join(ROOT, "RELIABILITY.md")).read()
block = "<!-- results:start -->\n" + "\n".join(out) + "\n<!-- results:end -->"
if "<!-- results:start -->" in text:
    text = re.sub(r"<!-- results:start -->.*?<!-- results:end -->", lambda _: block, text, flags=re.S)
else:
    text = text.replace("## Authorization matrix", "## Results\n\n" + block + "\n\n## Authorization matrix", 1)
open(os.path.join(ROOT, "RELIABILITY.md"), "w").write(text)
print("RELIABILITY.md updated")
