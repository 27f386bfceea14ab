#!/usr/bin/env bash
# Whole-process throughput of `trigd match --events ... --format summary` over the citylots2
# data, one rules directory per CL2 rule set (each pattern a rule with one `log: true` target),
# as `cargo bench --bench matcher` measures the in-process matcher on the same sets.
#
# Usage: benches/replay.sh [SET...]        (default: every set, plus PARTIAL_COMBO and COMBO)
# Env:   TRIGD  the binary (default: build and use target/release/trigd)
#        DATA   the data directory (default: target/bench-data)
#        GEN    the data generator (default: ../shared/bench/gen_citylots.py)
#        RUNS   timed runs per set; the median is reported (default: 3)
#
# Prints, per set: rules, median wall time, events/s, and the matches per rule (first 8, in
# rule order) to compare with the matcher benchmark's "matches per rule".
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-target/bench-data}
GEN=${GEN:-../shared/bench/gen_citylots.py}
RUNS=${RUNS:-3}
if [ -z "${TRIGD:-}" ]; then
    cargo build --release --quiet --bin trigd
    TRIGD=target/release/trigd
fi

if [ ! -f "$DATA/citylots2.json.gz" ]; then
    python3 "$GEN" "$DATA"
fi
if [ ! -f "$DATA/citylots2.jsonl" ]; then
    gzip -dc "$DATA/citylots2.json.gz" > "$DATA/citylots2.jsonl.tmp"
    mv "$DATA/citylots2.jsonl.tmp" "$DATA/citylots2.jsonl"
fi

# One rules directory per set, built like benches/matcher.rs builds its sets.
python3 - "$DATA/replay-rules" <<'EOF'
import json, os, sys
out = sys.argv[1]
sets = json.load(open("benches/data/cl2_rules.json"))
partial = []
for name in ["NUMERIC", "EXACT", "PREFIX", "ANYTHING_BUT", "ANYTHING_BUT_IGNORE_CASE",
             "ANYTHING_BUT_PREFIX", "ANYTHING_BUT_SUFFIX", "ANYTHING_BUT_WILDCARD"]:
    partial += sets[name]
sets["PARTIAL_COMBO"] = partial
sets["COMBO"] = partial + sets["COMPLEX_ARRAYS"]
for name, patterns in sets.items():
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "rules.yaml"), "w") as f:
        f.write("rules:\n")
        for i, p in enumerate(patterns):
            # JSON is YAML: each pattern is written as a flow mapping.
            f.write(f"  - name: r{i:03}\n    pattern: {json.dumps(p)}\n")
            f.write("    targets: [{id: t, log: true}]\n")
EOF

events="$DATA/citylots2.jsonl"
lines=$(wc -l < "$events")
if [ $# -gt 0 ]; then
    sets=("$@")
else
    sets=(EXACT WILDCARD PREFIX PREFIX_EQUALS_IGNORE_CASE SUFFIX SUFFIX_EQUALS_IGNORE_CASE
          EQUALS_IGNORE_CASE NUMERIC COMPLEX_ARRAYS ANYTHING_BUT ANYTHING_BUT_IGNORE_CASE
          ANYTHING_BUT_PREFIX ANYTHING_BUT_SUFFIX ANYTHING_BUT_WILDCARD PARTIAL_COMBO COMBO)
fi

echo "$("$TRIGD" --version), $(nproc) cores, $lines events ($(du -h "$events" | cut -f1)), median of $RUNS"
printf '%-26s %5s %9s %12s   %s\n' set rules seconds events/s "matches per rule"
for set in "${sets[@]}"; do
    dir="$DATA/replay-rules/$set"
    times=()
    for _ in $(seq "$RUNS"); do
        start=$(date +%s.%N)
        "$TRIGD" match "$dir" --events "$events" --format summary > "$DATA/replay-summary.json"
        end=$(date +%s.%N)
        times+=("$(echo "$end - $start" | bc)")
    done
    median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p")
    python3 - "$DATA/replay-summary.json" "$set" "$median" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
counts = list(s["matches"].values())
shown = ",".join(str(c) for c in counts[:8]) + (",…" if len(counts) > 8 else "")
secs = float(sys.argv[3])
print(f"{sys.argv[2]:<26} {len(counts):>5} {secs:>9.3f} {s['events'] / secs:>12.0f}   {shown}")
EOF
done
