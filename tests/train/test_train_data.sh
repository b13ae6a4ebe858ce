#!/usr/bin/env bash
# Tests of the training data loaders (tools/train/data.py --check): on tiny
# synthetic data directories in the real files' formats, a good directory
# passes (exit 0, counts printed) and each damaged one is refused with exit
# status 1 and a message naming the file and, where there is one, the line
# ("FILE:LINE"). Also checks the real data directory when there is one
# ($SC_DATA_DIR; skipped when unset). TAP output.
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
DATA_PY=${DATA_PY:-tools/train/data.py}
tmp=$(mktemp -d /tmp/sc_train_data.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
n=0; bad=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); bad=$((bad + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do printf "%s\n" "$l" | sed "s/^/# /"; done; }

# A good directory in $1, every file in its format.
make_good() {
  local d=$1
  mkdir -p "$d"
  printf '%s\n' \
    '{"text_a": "How do I learn Python?", "text_b": "What is the best way to learn Python?", "label": 1}' \
    '{"text_a": "Why is the sky blue?", "text_b": "Why is grass green?", "label": 0}' \
    '{"text_a": "How can I lose weight fast?", "text_b": "What is the fastest way to lose weight?", "label": 1}' \
    '{"text_a": "What is AI?", "text_b": "What is machine learning?", "label": 0}' \
    >"$d/qqp_dev.jsonl"
  gzip -n "$d/qqp_dev.jsonl"
  cat >"$d/gptcache_mock_data.json" <<'EOF'
[
    {"origin": "What is GPTCache?", "similar": "Can you explain GPTCache?"},
    {"origin": "How does a cache work?", "similar": "Explain how caching works."}
]
EOF
  printf '%s\r\n' 'text,category' 'I am still waiting on my card?,card_arrival' \
    '"My card, it has not arrived",card_arrival' 'How do I top up?,top_up' >"$d/banking77_train.csv"
  printf '%s' '{"train": [["set an alarm", "alarm"], ["what is the weather", "weather"]],' \
    ' "val": [["wake me up at 7", "alarm"]], "test": [["x", "y"]],' \
    ' "oos_train": [["hi", "oos"]], "oos_val": [], "oos_test": []}' | gzip -n >"$d/clinc150_data_full.json.gz"
  printf 'main-captions\tMSRvid\t2012test\t0000\t5.000\tA man is dancing.\tA man dances.\n' >"$d/stsb_sts-dev.csv"
  printf 'main-captions\tMSRvid\t2012test\t0002\t0.500\tA child rides a horse.\tA cat sleeps.\textra\tfields\n' \
    >>"$d/stsb_sts-dev.csv"
  printf 'main-news\tMSRpar\t2012test\t0003\t3.2\tStocks fell.\tShares dropped.\n' >>"$d/stsb_sts-dev.csv"
}

# A copy of the good directory in $tmp/$1 (for damaging).
case_dir() { rm -rf "${tmp:?}/$1"; cp -r "$tmp/good" "$tmp/$1"; echo "$tmp/$1"; }

# expect_refused NAME DIR WANT...: data.py --check DIR exits 1 and its
# message contains every WANT (the first is the FILE:LINE part).
expect_refused() {
  local name=$1 dir=$2; shift 2
  local out rc
  out=$("$PY" "$DATA_PY" --check "$dir" 2>&1); rc=$?
  local why=()
  [ "$rc" -eq 1 ] || why+=("exit status $rc, expected 1")
  case $out in *Traceback*) why+=("a traceback instead of a message") ;; esac
  for w in "$@"; do
    case $out in *"$w"*) ;; *) why+=("message lacks \"$w\"") ;; esac
  done
  if [ ${#why[@]} -eq 0 ]; then ok "$name"; else not_ok "$name" "${why[@]}" "output: $(echo "$out" | tail -3)"; fi
}

# regz FILE: re-gzip FILE.jsonl (plain text in $FILE.txt) as FILE.
regz() { gzip -n -c "$1.txt" >"$1"; rm -f "$1.txt"; }

if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null; then
  echo "1..1"; echo "not ok 1 - $PY missing"; exit 1
fi

make_good "$tmp/good"

# 1. good data
out=$("$PY" "$DATA_PY" --check "$tmp/good" 2>&1); rc=$?
if [ "$rc" -eq 0 ] && echo "$out" | grep -qx $'qqp_train\t[0-9]*' && echo "$out" | grep -qx $'stsb_dev\t3' &&
   echo "$out" | grep -qx $'clinc_tune\t1'; then
  ok "good synthetic data passes"
else
  not_ok "good synthetic data passes" "rc $rc" "output: $out"
fi
b77=$(echo "$out" | awk -F'\t' '$1 ~ /^b77_/ {s += $2} END {print s}')
[ "$b77" = 3 ] && ok "banking77 rows counted (quoted comma, CRLF)" || not_ok "banking77 rows counted (quoted comma, CRLF)" "got $b77"

# 2. a missing file: the message names it
for f in qqp_dev.jsonl.gz gptcache_mock_data.json banking77_train.csv clinc150_data_full.json.gz stsb_sts-dev.csv; do
  d=$(case_dir "missing_$f"); rm "$d/$f"
  expect_refused "missing $f" "$d" "$d/$f: missing"
done

# 3. qqp_dev.jsonl.gz: a malformed JSON line, bad labels, a missing field, not gzip
d=$(case_dir qqp_json); zcat "$d/qqp_dev.jsonl.gz" >"$d/q.txt"
sed -i '3s/.*/{"text_a": "broken", "text_b": /' "$d/q.txt"; mv "$d/q.txt" "$d/qqp_dev.jsonl.gz.txt"; regz "$d/qqp_dev.jsonl.gz"
expect_refused "qqp: malformed JSON line" "$d" "$d/qqp_dev.jsonl.gz:3:" "not JSON"
k=0
for lab in 2 '"1"' true 1.0 null -1; do
  k=$((k + 1)); d=$(case_dir "qqp_label_$k"); zcat "$d/qqp_dev.jsonl.gz" >"$d/qqp_dev.jsonl.gz.txt"
  sed -i "2s/\"label\": 0/\"label\": $lab/" "$d/qqp_dev.jsonl.gz.txt"; regz "$d/qqp_dev.jsonl.gz"
  expect_refused "qqp: label $lab" "$d" "$d/qqp_dev.jsonl.gz:2:" "label"
done
d=$(case_dir qqp_field); zcat "$d/qqp_dev.jsonl.gz" >"$d/qqp_dev.jsonl.gz.txt"
sed -i '4s/"text_b": "[^"]*"/"text_b": "  "/' "$d/qqp_dev.jsonl.gz.txt"; regz "$d/qqp_dev.jsonl.gz"
expect_refused "qqp: blank text_b" "$d" "$d/qqp_dev.jsonl.gz:4:" "text_b"
d=$(case_dir qqp_array); zcat "$d/qqp_dev.jsonl.gz" >"$d/qqp_dev.jsonl.gz.txt"
sed -i '1s/.*/[1, 2]/' "$d/qqp_dev.jsonl.gz.txt"; regz "$d/qqp_dev.jsonl.gz"
expect_refused "qqp: a line not an object" "$d" "$d/qqp_dev.jsonl.gz:1:" "object"
d=$(case_dir qqp_notgz); zcat "$d/qqp_dev.jsonl.gz" >"$d/x"; mv "$d/x" "$d/qqp_dev.jsonl.gz"
expect_refused "qqp: not gzip" "$d" "$d/qqp_dev.jsonl.gz" "cannot read"

# 4. banking77_train.csv: a row with 3 fields, a bad header, bad UTF-8, an empty category
d=$(case_dir b77_fields); sed -i '4s/.*/How do I top up?,top_up,extra\r/' "$d/banking77_train.csv"
expect_refused "banking77: a row with 3 fields" "$d" "$d/banking77_train.csv:4:" "expected 2 fields, got 3"
d=$(case_dir b77_header); sed -i '1s/.*/text;category\r/' "$d/banking77_train.csv"
expect_refused "banking77: bad header" "$d" "$d/banking77_train.csv:1:" "header"
d=$(case_dir b77_utf8); printf 'caf\xe9 card,card_arrival\r\n' >>"$d/banking77_train.csv"
expect_refused "banking77: invalid UTF-8" "$d" "$d/banking77_train.csv:5:" "UTF-8"
d=$(case_dir b77_empty); sed -i '3s/.*/"My card",\r/' "$d/banking77_train.csv"
expect_refused "banking77: empty category" "$d" "$d/banking77_train.csv:3:" "category"
d=$(case_dir b77_norows); printf 'text,category\r\n' >"$d/banking77_train.csv"
expect_refused "banking77: no rows" "$d" "$d/banking77_train.csv" "no rows"

# 5. stsb_sts-dev.csv: bad scores, too few fields
k=0
for s in abc 5.5 -1 nan inf ''; do
  k=$((k + 1)); d=$(case_dir "stsb_score_$k"); sed -i "2s/\t0\.500\t/\t$s\t/" "$d/stsb_sts-dev.csv"
  expect_refused "stsb: score '$s'" "$d" "$d/stsb_sts-dev.csv:2:" "score"
done
d=$(case_dir stsb_fields); printf 'main\tMSRvid\t2012\t0004\t1.0\tonly one sentence\n' >>"$d/stsb_sts-dev.csv"
expect_refused "stsb: 6 fields" "$d" "$d/stsb_sts-dev.csv:4:" "expected 7"
d=$(case_dir stsb_empty); : >"$d/stsb_sts-dev.csv"
expect_refused "stsb: empty file" "$d" "$d/stsb_sts-dev.csv" "no rows"

# 6. the JSON files
d=$(case_dir gpt_json); printf '[\n {"origin": "a",\n  "similar": }\n]\n' >"$d/gptcache_mock_data.json"
expect_refused "gptcache: malformed JSON" "$d" "$d/gptcache_mock_data.json:3:" "not JSON"
d=$(case_dir gpt_field); printf '[{"origin": "a", "similar": "b"}, {"origin": "c"}]\n' >"$d/gptcache_mock_data.json"
expect_refused "gptcache: missing field" "$d" "$d/gptcache_mock_data.json:item 1:" "similar"
d=$(case_dir clinc_val); printf '{"train": [["a", "b"]], "val": [["c"]]}' | gzip -n >"$d/clinc150_data_full.json.gz"
expect_refused "clinc150: bad val row" "$d" "$d/clinc150_data_full.json.gz: val[0]" "[text, intent]"
d=$(case_dir clinc_train); printf '{"val": [["c", "d"]]}' | gzip -n >"$d/clinc150_data_full.json.gz"
expect_refused "clinc150: no train list" "$d" "$d/clinc150_data_full.json.gz" "'train'"

# 7. the real data directory, when there is one
real=${SC_DATA_DIR:-}
if [ -n "$real" ] && [ -d "$real" ]; then
  out=$("$PY" "$DATA_PY" --check "$real" 2>&1); rc=$?
  if [ "$rc" -eq 0 ] && [ "$(echo "$out" | grep -c $'\t[1-9][0-9]*$')" -eq 9 ]; then ok "real data in $real passes"
  else not_ok "real data in $real passes" "rc $rc" "output: $(echo "$out" | tail -3)"; fi
else
  ok "real data # SKIP set SC_DATA_DIR to check a real data directory"
fi

# 8. usage
"$PY" "$DATA_PY" >/dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] && ok "usage error exits 2" || not_ok "usage error exits 2" "rc $rc"

echo "1..$n"
[ "$bad" -eq 0 ]
