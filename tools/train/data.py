"""Training and tuning data for the cache embedder, read from a data
directory laid out like the project's evaluation data (BENCHMARKS.md,
Quality): qqp_dev.jsonl.gz, gptcache_mock_data.json, banking77_train.csv,
clinc150_data_full.json.gz (train and val lists only), stsb_sts-dev.csv.

Never read here: qqp_test, banking77_test, CLINC150 test, STS-B test (the
report-only splits). Every loader checks its file and raises DataError
naming the file and line of the first problem.

Splits made here (by a hash of the text, so they are stable):
  qqp_dev rows with crc32(text_a) % 10 == 0  -> "qqp_tune" (never trained on)
  gptcache items with crc32(origin) % 10 == 0 -> "gpt_tune"
  banking77_train rows with crc32(text) % 5 == 0 -> "b77_tune" (FAQ dev scenario)
  CLINC150 val                                 -> "clinc_tune" (FAQ dev scenario)
`python3 tools/train/data.py --check DIR` loads everything and prints counts.
"""
import csv
import gzip
import io
import json
import os
import sys
import zlib


class DataError(Exception):
    pass


def _need(path):
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing (the training data directory must hold it)")


def _text(v, path, line, field):
    if not isinstance(v, str) or not v.strip():
        raise DataError(f"{path}:{line}: field {field!r} is missing or not a non-empty string")
    if len(v) > 4096:
        raise DataError(f"{path}:{line}: field {field!r} is longer than 4096 characters")
    return " ".join(v.split())


def _read_text(path):
    """The file as text; invalid UTF-8 is a DataError naming the line."""
    _need(path)
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 ({e.reason})")


def _bucket(s, mod):
    return zlib.crc32(s.encode()) % mod


def load_qqp(path):
    _need(path)
    rows = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    o = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{i}: not JSON ({e.msg})")
                if not isinstance(o, dict):
                    raise DataError(f"{path}:{i}: expected an object")
                lab = o.get("label")
                if type(lab) is not int or lab not in (0, 1):  # not true/false, not 1.0
                    raise DataError(f"{path}:{i}: label must be 0 or 1")
                rows.append((_text(o.get("text_a"), path, i, "text_a"), _text(o.get("text_b"), path, i, "text_b"), lab))
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})")
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def load_gptcache(path):
    _need(path)
    try:
        items = json.load(open(path, encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}:{getattr(e, 'lineno', 1)}: not JSON ({e})")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})")
    if not isinstance(items, list):
        raise DataError(f"{path}:1: expected a list of {{origin, similar}} objects")
    out = []
    for i, o in enumerate(items):
        if not isinstance(o, dict):
            raise DataError(f"{path}: item {i}: expected an object")
        out.append((_text(o.get("origin"), path, f"item {i}", "origin"), _text(o.get("similar"), path, f"item {i}", "similar")))
    if not out:
        raise DataError(f"{path}: no items")
    return out


def load_banking(path):
    out = []
    r = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        head = next(r, None)
        if head != ["text", "category"]:
            raise DataError(f"{path}:1: expected the header text,category")
        for row in r:
            line = r.line_num
            if len(row) != 2:
                raise DataError(f"{path}:{line}: expected 2 fields, got {len(row)}")
            out.append((_text(row[0], path, line, "text"), _text(row[1], path, line, "category")))
    except csv.Error as e:
        raise DataError(f"{path}:{r.line_num}: bad CSV ({e})")
    if not out:
        raise DataError(f"{path}: no rows")
    return out


def load_clinc(path):
    _need(path)
    try:
        d = json.load(gzip.open(path, "rt", encoding="utf-8"))
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})")
    out = {}
    for split in ("train", "val"):
        rows = d.get(split) if isinstance(d, dict) else None
        if not isinstance(rows, list) or not rows:
            raise DataError(f"{path}: no {split!r} list")
        lst = []
        for i, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == 2):
                raise DataError(f"{path}: {split}[{i}]: expected [text, intent]")
            lst.append((_text(row[0], path, f"{split}[{i}]", "text"), _text(row[1], path, f"{split}[{i}]", "intent")))
        out[split] = lst
    return out


def load_stsb(path):
    out = []
    with io.StringIO(_read_text(path), newline=None) as f:
        for i, line in enumerate(f, 1):
            t = line.rstrip("\n").split("\t")
            if len(t) < 7:
                raise DataError(f"{path}:{i}: expected 7 tab-separated fields, got {len(t)}")
            try:
                score = float(t[4])
            except ValueError:
                raise DataError(f"{path}:{i}: score {t[4]!r} is not a number")
            if not 0 <= score <= 5:
                raise DataError(f"{path}:{i}: score {score} outside 0..5")
            out.append((_text(t[5], path, i, "s1"), _text(t[6], path, i, "s2"), score))
    if not out:
        raise DataError(f"{path}: no rows")
    return out


def load_lookalike_tsv(path):
    """tests/fixtures/lookalike*.tsv: label TAB kind TAB a TAB b (# comments)."""
    _need(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.startswith("#") or not line.strip():
                continue
            t = line.rstrip("\n").split("\t")
            if len(t) != 4 or t[0] not in ("0", "1"):
                raise DataError(f"{path}:{i}: expected label(0/1) TAB kind TAB a TAB b")
            out.append((int(t[0]), t[1], t[2], t[3]))
    return out


def load_all(d):
    """Everything train.py uses, split into training and tuning parts."""
    qqp = load_qqp(os.path.join(d, "qqp_dev.jsonl.gz"))
    gpt = load_gptcache(os.path.join(d, "gptcache_mock_data.json"))
    b77 = load_banking(os.path.join(d, "banking77_train.csv"))
    clinc = load_clinc(os.path.join(d, "clinc150_data_full.json.gz"))
    sts = load_stsb(os.path.join(d, "stsb_sts-dev.csv"))
    out = {
        "qqp_train": [r for r in qqp if _bucket(r[0], 10) != 0],
        "qqp_tune": [r for r in qqp if _bucket(r[0], 10) == 0],
        "gpt_train": [r for r in gpt if _bucket(r[0], 10) != 0],
        "gpt_tune": [r for r in gpt if _bucket(r[0], 10) == 0],
        "b77_train": [r for r in b77 if _bucket(r[0], 5) != 0],
        "b77_tune": [r for r in b77 if _bucket(r[0], 5) == 0],
        "clinc_train": clinc["train"],
        "clinc_tune": clinc["val"],
        "stsb_dev": sts,
    }
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--check":
        print("usage: data.py --check DATA_DIR", file=sys.stderr)
        sys.exit(2)
    try:
        parts = load_all(sys.argv[2])
    except DataError as e:
        print(f"train: {e}", file=sys.stderr)
        sys.exit(1)
    for k, v in parts.items():
        print(f"{k}\t{len(v)}")
