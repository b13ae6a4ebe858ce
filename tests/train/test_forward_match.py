#!/usr/bin/python3
"""The PyTorch side of the embedder training pipeline (tools/train/scmodel.py)
must compute what the server computes. On the golden sentences of
tests/fixtures/use_reference.json (text, TF.js token ids, TF.js embedding):

  (a) the C tokenizer (build/sc-model tokenize) gives the reference ids,
      for USE-lite's npm folder and for a model.bin export of it;
  (b) scmodel.load_bin() of `build/sc-model export-use` and its forward
      pass equal the C forward (build/sc-model embed) with cosine >= 0.9999
      for every sentence, and the TF.js reference as well;
  (c) the same PyTorch-vs-C check on models/semcache-embed-v1 (or
      $SC_EMBED_MODEL_DIR) when it is there;
  and scmodel.save_bin() writes files the C loader accepts and runs alike
  (float16 and float32), while load_bin() refuses a damaged file.

Texts with a newline cannot go through sc-model's one-text-a-line stdin:
for those (3) only the PyTorch-vs-TF.js check applies. Needs python3-torch
(run with /usr/bin/python3); without it this fails ("not ok"), it does not
skip. Prints TAP.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.chdir(ROOT)
SC_BUILD = os.environ.get("SC_BUILD", os.path.join(ROOT, "build"))
SC_MODEL = os.path.join(SC_BUILD, "sc-model")
USE_DIR = "models/use-lite/dist"
FIXTURE = "tests/fixtures/use_reference.json"
SHIPPED = os.environ.get("SC_EMBED_MODEL_DIR", "models/semcache-embed-v1")  # (c)
MIN_COS = 0.9999

n_tests = 0
n_failed = 0


def report(ok, name, diag=()):
    global n_tests, n_failed
    n_tests += 1
    n_failed += 0 if ok else 1
    print(f"{'ok' if ok else 'not ok'} {n_tests} - {name}")
    for d in diag if not ok else ():
        for line in str(d).splitlines() or [""]:
            print(f"# {line}")
    sys.stdout.flush()
    return ok


def finish():
    print(f"1..{n_tests}")
    sys.exit(1 if n_failed else 0)


try:
    import numpy as np
    import torch
except ImportError as e:
    report(False, f"python3-torch missing ({e}): apt-get install python3-torch")
    finish()

sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import scmodel  # noqa: E402

torch.set_num_threads(1)


def sc_model(args, texts=None):
    """Runs sc-model; stdin: texts one a line. Returns (rc, stdout lines, stderr)."""
    inp = "".join(t + "\n" for t in texts) if texts is not None else ""
    # The C forward in fp32 (SC_EMBED_INT8=0): PyTorch computes in fp32, and
    # the server's int8 kernels have their own bound (tests/unit/test_embed_use.c).
    env = dict(os.environ, SC_EMBED_INT8="0")
    p = subprocess.run([SC_MODEL] + args, input=inp.encode(), capture_output=True, timeout=300, env=env)
    out = p.stdout.decode().split("\n")
    if out and out[-1] == "":
        out.pop()
    return p.returncode, out, p.stderr.decode()


def c_tokenize(model_dir, texts):
    rc, out, err = sc_model(["tokenize", model_dir], texts)
    if rc != 0 or len(out) != len(texts):
        raise RuntimeError(f"sc-model tokenize {model_dir}: rc {rc}, {len(out)} lines for {len(texts)}: {err}")
    return [[int(x) for x in line.split()] for line in out]


def c_embed(model_dir, texts):
    rc, out, err = sc_model(["embed", model_dir], texts)
    if rc != 0 or len(out) != len(texts):
        raise RuntimeError(f"sc-model embed {model_dir}: rc {rc}, {len(out)} lines for {len(texts)}: {err}")
    return np.array([[float(x) for x in line.split()] for line in out], dtype=np.float64)


def torch_embed(model, seqs, batch=32):
    """PyTorch forward of id lists (clipped to model.max_len), in batches of
    similar lengths; rows in the order of seqs."""
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = np.zeros((len(seqs), model.tanh.out_features), dtype=np.float64)
    with torch.no_grad():
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            ids, lens = scmodel.batch_ids([seqs[i] for i in idx], model.max_len)
            out[idx] = model(ids, lens).double().numpy()
    return out


def cosines(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    num = (a * b).sum(1)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1)) + 1e-30
    return num / den


def check_cos(name, cos, texts):
    worst = int(np.argmin(cos))
    bad = [i for i in range(len(cos)) if not cos[i] >= MIN_COS]
    diag = [f"{len(bad)} of {len(cos)} below {MIN_COS}: " +
            ", ".join(f"{texts[i][:40]!r} {cos[i]:.6f}" for i in bad[:5])] if bad else []
    return report(not bad, f"{name} (n={len(cos)}, worst cosine {cos[worst]:.7f})", diag)


def line_safe(t):
    return "\n" not in t and "\r" not in t and "\0" not in t


def main():
    if not report(os.access(SC_MODEL, os.X_OK), f"{SC_MODEL} is built", ["run make -j1 all"]):
        finish()
    sents = json.load(open(FIXTURE, encoding="utf-8"))["sentences"]
    texts = [s["text"] for s in sents]
    ref_ids = [s["ids"] for s in sents]
    ref_emb = np.array([s["embedding"] for s in sents], dtype=np.float64)
    safe = [i for i, t in enumerate(texts) if line_safe(t)]
    safe_texts = [texts[i] for i in safe]

    tmp = tempfile.mkdtemp(prefix="sc_forward_")
    try:
        export = os.path.join(tmp, "use")
        rc, _, err = sc_model(["export-use", USE_DIR, export])
        if not report(rc == 0 and os.path.isfile(os.path.join(export, "model.bin")),
                      "sc-model export-use USE-lite", [err]):
            finish()
        model = scmodel.load_bin(os.path.join(export, "model.bin"))
        max_len = model.max_len
        report(max_len == 128 and model.name == "use-lite-export",
               f"load_bin of the export (max_len {max_len}, name {model.name!r})")

        # (a) the C tokenizer gives the TF.js ids (the first max_len of them)
        for d, what in ((USE_DIR, "USE-lite npm folder"), (export, "model.bin export")):
            got = c_tokenize(d, safe_texts)
            bad = [k for k, i in enumerate(safe) if got[k] != ref_ids[i][:max_len]]
            report(not bad, f"(a) C tokenizer ({what}) gives the reference ids for {len(safe)} sentences",
                   [f"{safe_texts[k][:40]!r}: got {got[k][:12]}..., want {ref_ids[safe[k]][:12]}..."
                    for k in bad[:5]])

        # (b) PyTorch forward == C forward == TF.js
        pt = torch_embed(model, [ids[:max_len] for ids in ref_ids])
        c = c_embed(export, safe_texts)
        check_cos("(b) PyTorch forward equals the C forward on the export", cosines(pt[safe], c), safe_texts)
        check_cos("(b) PyTorch forward equals the TF.js reference, all sentences", cosines(pt, ref_emb), texts)
        c_dist = c_embed(USE_DIR, safe_texts[:40])
        check_cos("(b) C forward: the export equals the npm folder", cosines(c[:40], c_dist), safe_texts[:40])

        # save_bin -> the C loader, float16 and float32
        sub = [ref_ids[i][:max_len] for i in safe[:60]]
        sub_texts = safe_texts[:60]
        for dtype, dname in ((scmodel.F16, "float16"), (scmodel.F32, "float32")):
            d = os.path.join(tmp, dname)
            os.mkdir(d)
            scmodel.save_bin(model, os.path.join(d, "model.bin"), dtype=dtype, name=f"pt-{dname}")
            shutil.copy(os.path.join(USE_DIR, "vocab.json"), os.path.join(d, "vocab.json"))
            rc, out, err = sc_model(["check", d])
            if not report(rc == 0 and out and out[0].startswith("ok:"),
                          f"save_bin {dname}: sc-model check accepts it", [err] + out):
                continue
            m2 = scmodel.load_bin(os.path.join(d, "model.bin"))
            report(m2.name == f"pt-{dname}", f"save_bin {dname}: the name is kept ({m2.name!r})")
            pt2 = torch_embed(m2, sub)
            check_cos(f"save_bin {dname}: PyTorch forward equals the C forward", cosines(pt2, c_embed(d, sub_texts)),
                      sub_texts)
            check_cos(f"save_bin {dname}: equals the float32 original", cosines(pt2, pt[safe[:60]]), sub_texts)
            if dtype == scmodel.F32:
                same = open(os.path.join(d, "model.bin"), "rb").read()[128:] == \
                    open(os.path.join(export, "model.bin"), "rb").read()[128:]
                report(same, "save_bin float32: the payload is byte-identical to the C export")

        # save_bin(fold=True): version 2 with the fold flag; the C side
        # then folds what it tokenizes, as `sc-model tokenize --fold` does
        d = os.path.join(tmp, "fold")
        os.mkdir(d)
        scmodel.save_bin(model, os.path.join(d, "model.bin"), dtype=scmodel.F16, name="pt-fold", fold=True)
        shutil.copy(os.path.join(USE_DIR, "vocab.json"), os.path.join(d, "vocab.json"))
        rc, out, err = sc_model(["check", d])
        report(rc == 0, "save_bin fold: sc-model check accepts it", [err] + out)
        m4 = scmodel.load_bin(os.path.join(d, "model.bin"))
        report(m4.fold and m4.name == "pt-fold", f"save_bin fold: load_bin reads the flag and the name ({m4.name!r})")
        typed = ["What is the capital of France?", "what is the capital of france", "WHAT IS THE CAPITAL OF FRANCE!"]
        ids4 = c_tokenize(d, typed)
        report(ids4[0] == ids4[1] == ids4[2], "save_bin fold: the C tokenizer folds case and end punctuation",
               [str(i) for i in ids4])
        rc, out, err = sc_model(["tokenize", "--fold", export], typed)
        report(rc == 0 and out[:3] == [" ".join(map(str, i)) for i in ids4],
               "sc-model tokenize --fold on the unfolded export gives the same ids", [err] + out)
        report(not scmodel.load_bin(os.path.join(export, "model.bin")).fold, "the export does not fold")

        # load_bin refuses a damaged file
        src = open(os.path.join(export, "model.bin"), "rb").read()
        bad_path = os.path.join(tmp, "bad.bin")
        for what, data in (("a flipped payload byte", src[:1000] + bytes([src[1000] ^ 1]) + src[1001:]),
                           ("a truncated file", src[:-4]), ("a bad magic", b"X" + src[1:])):
            open(bad_path, "wb").write(data)
            try:
                scmodel.load_bin(bad_path)
                report(False, f"load_bin refuses {what}", ["it was accepted"])
            except ValueError as e:
                report(bad_path in str(e), f"load_bin refuses {what}", [str(e)])

        # (c) the shipped model, when there is one
        if os.path.isfile(os.path.join(SHIPPED, "model.bin")):
            rc, out, err = sc_model(["check", SHIPPED])
            report(rc == 0, f"(c) sc-model check {SHIPPED}", [err] + out)
            m3 = scmodel.load_bin(os.path.join(SHIPPED, "model.bin"))
            ids3 = c_tokenize(SHIPPED, safe_texts)
            pt3 = torch_embed(m3, ids3)
            check_cos(f"(c) PyTorch forward equals the C forward on {SHIPPED}",
                      cosines(pt3, c_embed(SHIPPED, safe_texts)), safe_texts)
        else:
            report(True, f"(c) # SKIP no {SHIPPED}/model.bin")
    except Exception as e:  # a crash is a failure, with its reason
        import traceback
        report(False, f"unexpected error: {e!r}", [traceback.format_exc()])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


main()
