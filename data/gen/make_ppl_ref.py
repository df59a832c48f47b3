#!/usr/bin/env python3
"""Reference perplexities for `lolcats-eval --task ppl`, from transformers.

Protocol (what `lolcats-eval --task ppl` computes):
  1. Take the text as bytes (a whole file, or a byte range of it), decode
     them as UTF-8 and tokenize the whole text as ONE stream: a single
     SentencePiece `encode` call, so the tokenizer's add_dummy_prefix applies
     once at the very start.  SentencePiece's remove_extra_whitespaces
     normalization is turned off (as llama.cpp and Hugging Face's converted
     tokenizers do): the tok512 model asks for it, but it collapses runs of
     spaces, so that decode(encode(x)) != x.  Prepend BOS (id 1) once.
  2. Cut the stream into consecutive, non-overlapping windows of N tokens:
     [0, N), [N, 2N), ...  The last window may be shorter; it counts if it
     has >= 2 tokens and is dropped otherwise.
  3. Each window is a fresh context (positions 0..len-1, nothing carried
     over).  Inside a window every token after the first is predicted from
     its prefix in that window: NLL_i = -log softmax(logits_{i-1})[tok_i].
  4. mean NLL = (sum of NLL over all predicted tokens of all windows) /
     (number of predicted tokens); ppl = exp(mean NLL).  Predicted tokens
     = stream length - number of counted windows (minus the dropped
     one-token tail, if any).

Held-out split of tinystories_val.txt (for the stories260K "heldout" record):
  s0 = floor(0.9 * size) = (size * 9) // 10 bytes; the held-out text starts
  at the first line start at or after s0, i.e. s0 itself if s0 == 0 or byte
  s0-1 is '\\n', else one past the first '\\n' at an offset >= s0; it runs to
  the end of the file and is tokenized on its own as a stream with BOS.

The reference values are the transformers float32 run (logits in float32,
log-softmax in float32, NLL summed in float64).  Each record also carries
the same protocol computed with an independent float64 numpy forward pass of
the model's GGUF file (make_logits_ref.numpy_forward), to show that float32
rounding moves the perplexity far less than 4 significant digits.  (A
transformers model cast to float64 would not do: its LlamaRMSNorm and rotary
embedding compute in float32 whatever the model dtype.)  For each
record the first 16 ids and the sha256 of the whole id stream (BOS
included, little-endian int32) let a C test pinpoint a tokenizer mismatch.

Writes data/ref/ppl_reference.json.
Run:  python3 data/gen/make_ppl_ref.py [--data DIR] [--out DIR]
"""

import hashlib
import json
import math
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_logits_ref import gguf_weights, numpy_forward  # noqa: E402
from refcommon import (load_hf, load_spm_without_whitespace_removal,  # noqa: E402
                       parse_ref_args, versions)

BOS = 1
BATCH = 16

VAL_TXT = "text/tinystories/tinystories_val.txt"
SAMPLE_TXT = "text/tinystories/tinystories_sample.txt"

RUNS = [
    {
        "name": "stories260K-val-full",
        "model": "models/stories260K-hf",
        "gguf": "models/stories260K/stories260K.gguf",
        "tokenizer": "models/stories260K-hf/tokenizer.model",
        "text": VAL_TXT,
        "split": "all",
        "context": 512,
    },
    {
        "name": "stories260K-val-heldout",
        "model": "models/stories260K-hf",
        "gguf": "models/stories260K/stories260K.gguf",
        "tokenizer": "models/stories260K-hf/tokenizer.model",
        "text": VAL_TXT,
        "split": "heldout",
        "context": 512,
    },
    {
        "name": "llama-2-tiny-random-sample",
        "model": "models/llama-2-tiny-random/llama-2-tiny-random.gguf",
        "gguf": "models/llama-2-tiny-random/llama-2-tiny-random.gguf",
        "tokenizer": "tokenizers/llama2-spm/tokenizer.model",
        "text": SAMPLE_TXT,
        "split": "all",
        "context": 128,
    },
]

HELDOUT_RULE = ("s0 = (size * 9) // 10; start = s0 if s0 == 0 or byte s0-1 == '\\n' "
                "else (offset of the first '\\n' at or after s0) + 1; range [start, size)")


def heldout_start(data):
    s0 = (len(data) * 9) // 10
    if s0 == 0 or data[s0 - 1:s0] == b"\n":
        return s0
    return data.index(b"\n", s0) + 1


def windows(n, ctx):
    """[(begin, end)] of the counted windows of a stream of n tokens."""
    out = []
    for b in range(0, n, ctx):
        e = min(b + ctx, n)
        if e - b >= 2:
            out.append((b, e))
    return out


def nll_hf(model, ids, wins):
    """Sum of NLL (float64 accumulation of float32 values) and count."""
    total = 0.0
    count = 0
    full = [w for w in wins if w[1] - w[0] == wins[0][1] - wins[0][0]]
    rest = [w for w in wins if w not in full]
    groups = [full[i:i + BATCH] for i in range(0, len(full), BATCH)] + [[w] for w in rest]
    with torch.no_grad():
        for g in groups:
            x = torch.tensor([ids[b:e] for b, e in g], dtype=torch.long)
            logp = torch.log_softmax(model(x).logits[:, :-1, :], dim=-1)   # f32
            tgt = x[:, 1:]
            nll = -torch.gather(logp, 2, tgt.unsqueeze(-1))[..., 0]         # [B, L-1]
            total += float(np.sum(nll.numpy().astype(np.float64)))
            count += nll.numel()
    return total, count


def nll_numpy(w, cfg, ids, wins):
    total = 0.0
    count = 0
    for b, e in wins:
        seq = np.array(ids[b:e])
        lg = numpy_forward(w, cfg, seq)[:-1]                               # f64 [L-1, V]
        m = lg.max(axis=1)
        lse = m + np.log(np.exp(lg - m[:, None]).sum(axis=1))
        total += float(np.sum(lse - lg[np.arange(len(seq) - 1), seq[1:]]))
        count += len(seq) - 1
    return total, count


def run_one(data_dir, spec):
    path = os.path.join(data_dir, spec["text"])
    data = open(path, "rb").read()
    if spec["split"] == "heldout":
        b0 = heldout_start(data)
    else:
        b0 = 0
    b1 = len(data)
    sp = load_spm_without_whitespace_removal(os.path.join(data_dir, spec["tokenizer"]))
    assert sp.bos_id() == BOS
    ids = [BOS] + sp.encode(data[b0:b1].decode("utf-8"))
    ctx = spec["context"]
    wins = windows(len(ids), ctx)

    mpath = os.path.join(data_dir, spec["model"])
    if mpath.endswith(".gguf"):
        model = load_hf(os.path.dirname(mpath), gguf_file=os.path.basename(mpath))
    else:
        model = load_hf(mpath)
    s32, n32 = nll_hf(model, ids, wins)
    w, cfg = gguf_weights(os.path.join(data_dir, spec["gguf"]))
    s64, n64 = nll_numpy(w, cfg, ids, wins)
    assert n32 == n64 == len(ids) - len(wins) - (1 if (len(ids) - 1) % ctx == 0 else 0)

    nll32 = s32 / n32
    nll64 = s64 / n64
    ppl32 = math.exp(nll32)
    ppl64 = math.exp(nll64)
    rel = abs(ppl32 - ppl64) / ppl64
    assert rel < 1e-6, rel  # far below 4 significant digits
    rec = {
        "name": spec["name"],
        "model": spec["model"],
        "tokenizer": spec["tokenizer"],
        "text": spec["text"],
        "text_bytes": len(data),
        "byte_range": [b0, b1],
        "context": ctx,
        "n_tokens": len(ids),
        "n_windows": len(wins),
        "last_window_tokens": wins[-1][1] - wins[-1][0],
        "n_predicted": n32,
        "mean_nll": nll32,
        "ppl": ppl32,
        "mean_nll_f64": nll64,
        "ppl_f64": ppl64,
        "ppl_rel_diff_f32_f64": rel,
        "first_ids": ids[:16],
        "ids_sha256": hashlib.sha256(np.array(ids, dtype="<i4").tobytes()).hexdigest(),
    }
    if spec["split"] == "heldout":
        rec["split_rule"] = HELDOUT_RULE
    print("%-28s tokens %7d windows %4d predicted %7d  nll %.6f  ppl %.6f  "
          "(f64 numpy %.6f, rel diff %.1e)"
          % (spec["name"], len(ids), len(wins), n32, nll32, ppl32, ppl64, rel))
    return rec


def main():
    args = parse_ref_args(__doc__, __file__)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    records = [run_one(args.data, spec) for spec in RUNS]
    doc = {
        "description": "reference perplexities for lolcats-eval --task ppl, computed "
                       "with transformers LlamaForCausalLM in float32 (eager attention); "
                       "paths are relative to the shared test data folder",
        "protocol": __doc__.split("Protocol (what `lolcats-eval --task ppl` computes):\n")[1]
                           .split("\nHeld-out split")[0].strip(),
        "bos_id": BOS,
        "ids_sha256_of": "the whole id stream, BOS included, as little-endian int32",
        "versions": versions(),
        "records": records,
    }
    out = os.path.join(args.out, "ppl_reference.json")
    text = json.dumps(doc, indent=2)
    # Lists of numbers on one line.
    text = re.sub(r"\[\s+([-0-9.e,\s]+?)\s+\]",
                  lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]",
                  text)
    json.loads(text)
    with open(out, "w") as f:
        f.write(text + "\n")
    print("wrote", out, os.path.getsize(out), "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
