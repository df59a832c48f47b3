#!/usr/bin/env python3
"""Reference log-likelihoods for `lolcats-eval --task piqa|arc-*|hellaswag|winogrande`.

An implementation independent of the C code (task files parsed here,
prompts built here, SentencePiece + transformers for the model) of the
protocol lolcats-eval(1) documents, which follows lm-evaluation-harness:

  Prompts (the continuation starts with the space that joins it):
    piqa          context "Question: {goal}\\nAnswer:", continuations " {sol1}", " {sol2}",
                  gold from valid-labels.lst
    arc-*         context "Question: {question}\\nAnswer:", continuations " {text}",
                  gold = index of answerKey among choices.label
    hellaswag     context = the item's first line (llama.cpp text format: 6 lines per
                  item = context, gold, four endings), continuations " {ending}"
    winogrande    partial scoring: contexts = the two context_options, continuation
                  " {continuation}" after each
  Few-shot (K > 0): examples drawn per item with splitmix64 (see fewshot_draw),
  each "{gold context}{gold continuation}" + "\\n\\n", in front of the context.
  Trailing whitespace of the context is moved to the front of the continuation.
  Tokens: whole = [BOS] + encode(context + continuation), ctx = [BOS] + encode(context),
  continuation tokens = whole[len(ctx):], sequence = ctx + continuation tokens (cut
  from the left to context + 1 tokens); log-likelihood = sum over the continuation
  tokens of log softmax(logits of the previous position).
  acc = argmax loglik (first on ties); acc_norm = argmax loglik / characters
  and acc_bytes = argmax loglik / bytes, the length of the choice text without
  the joining space in characters (Python's len) and in UTF-8 bytes, as
  lm-evaluation-harness defines them.

The model is transformers LlamaForCausalLM (float32, eager attention) of
models/stories260K-hf; the tokenizer its tokenizer.model with SentencePiece's
remove_extra_whitespaces turned off (the C tokenizer does not collapse spaces).
Log-softmax in float32, sums in float64 ("loglik").  Each value is also
computed in float64 throughout with the independent numpy forward pass of the
model's GGUF file (make_logits_ref.numpy_forward; "loglik_f64"): float32
rounding alone moves a sum over a long continuation by up to ~1e-4, so two
float32 implementations are best compared through the float64 value.

Writes data/ref/eval_reference.json: for each run (task, shots, seed, items)
the items with per-choice log-likelihoods, lengths in characters and in
bytes, continuation and sequence token counts and the gold index, and the
accuracies; for few-shot runs also the first item's prompt text.
Run:  python3 data/gen/make_eval_ref.py [--data DIR] [--out DIR]
"""

import bz2
import json
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
MODEL = "models/stories260K-hf"
TOKENIZER = "models/stories260K-hf/tokenizer.model"
GGUF = "models/stories260K/stories260K.gguf"  # the same weights, for the float64 forward
CONTEXT = 512  # the model's max_position_embeddings

FILES = {
    "piqa": "eval/piqa/valid.jsonl",
    "arc-easy": "eval/arc/ARC-Easy-test.jsonl",
    "arc-challenge": "eval/arc/ARC-Challenge-test.jsonl",
    "hellaswag": "eval/hellaswag/hellaswag_val_full.txt.bz2",
    "winogrande": "eval/winogrande/winogrande.jsonl",
}

RUNS = [
    {"task": "piqa", "shots": 0, "seed": 1234, "items": 50},
    {"task": "arc-easy", "shots": 0, "seed": 1234, "items": 50},
    {"task": "arc-challenge", "shots": 0, "seed": 1234, "items": 50},
    {"task": "hellaswag", "shots": 0, "seed": 1234, "items": 50},
    {"task": "winogrande", "shots": 0, "seed": 1234, "items": 50},
    {"task": "piqa", "shots": 2, "seed": 1234, "items": 8},
    {"task": "arc-challenge", "shots": 3, "seed": 5, "items": 5},
    {"task": "hellaswag", "shots": 1, "seed": 7, "items": 5},
    {"task": "winogrande", "shots": 3, "seed": 1234, "items": 8},
]

SPACES = " \t\n\r\f\v"


# ----------------------------------------------------------------- tasks
# Each item: (contexts[], continuations[], norm texts[], gold)

def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_task(data_dir, task):
    path = os.path.join(data_dir, FILES[task])
    items = []
    if task == "piqa":
        labels = open(path.replace(".jsonl", "-labels.lst")).read().split()
        docs = jsonl(path)
        assert len(labels) == len(docs)
        for d, lab in zip(docs, labels):
            ctx = "Question: " + d["goal"] + "\nAnswer:"
            texts = [d["sol1"], d["sol2"]]
            items.append(([ctx] * 2, [" " + t for t in texts], texts, int(lab)))
    elif task.startswith("arc-"):
        for d in jsonl(path):
            ctx = "Question: " + d["question"] + "\nAnswer:"
            texts = d["choices"]["text"]
            gold = d["choices"]["label"].index(d["answerKey"])
            items.append(([ctx] * len(texts), [" " + t for t in texts], texts, gold))
    elif task == "hellaswag":
        lines = bz2.open(path, "rt", encoding="utf-8").read().split("\n")
        if lines[-1] == "":
            lines.pop()
        assert len(lines) % 6 == 0
        for i in range(0, len(lines), 6):
            ctx, gold, endings = lines[i], int(lines[i + 1]), lines[i + 2:i + 6]
            items.append(([ctx] * 4, [" " + e for e in endings], endings, gold))
    elif task == "winogrande":
        for d in jsonl(path):
            opts = d["context_options"]
            c = d["continuation"]
            items.append((list(opts), [" " + c] * len(opts), [c] * len(opts), d["gold"]))
    return items


# --------------------------------------------------------------- prompts

M64 = (1 << 64) - 1


def fewshot_draw(n, item, shots, seed):
    """`shots` distinct indices != item: splitmix64 from seed ^ ((item+1) * C)."""
    state = (seed ^ ((item + 1) * 0xD1B54A32D192ED03)) & M64
    picks = []
    while len(picks) < shots:
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        j = z % (n - 1)
        if j >= item:
            j += 1
        if j not in picks:
            picks.append(j)
    return picks


def prompt(items, i, c, shots, seed):
    prefix = ""
    for j in fewshot_draw(len(items), i, shots, seed) if shots > 0 else []:
        ctxs, conts, _, g = items[j]
        prefix += ctxs[g] + conts[g] + "\n\n"
    ctx = prefix + items[i][0][c]
    cont = items[i][1][c]
    n = len(ctx) - len(ctx.rstrip(SPACES))
    if n > 0:
        ctx, cont = ctx[:-n], ctx[-n:] + cont
    return ctx, cont


def request(sp, ctx, cont):
    whole = [BOS] + sp.encode(ctx + cont)
    cids = [BOS] + sp.encode(ctx)
    cont_ids = whole[len(cids):]
    seq = (cids + cont_ids)[-(CONTEXT + 1):]
    return seq, len(cont_ids)


def loglik(model, seq, n_cont):
    with torch.no_grad():
        x = torch.tensor([seq[:-1]], dtype=torch.long)
        logp = torch.log_softmax(model(x).logits[0], dim=-1)           # f32 [T, V]
        tgt = torch.tensor(seq[1:], dtype=torch.long)
        lp = torch.gather(logp, 1, tgt[:, None])[:, 0].numpy()         # [T]
    return float(np.sum(lp[len(lp) - n_cont:].astype(np.float64)))


def loglik_f64(w, cfg, seq, n_cont):
    """The same in float64 with an independent numpy forward of the GGUF file."""
    lg = numpy_forward(w, cfg, np.array(seq[:-1]))                      # f64 [T, V]
    m = lg.max(axis=1)
    lse = m + np.log(np.exp(lg - m[:, None]).sum(axis=1))
    lp = lg[np.arange(len(seq) - 1), np.array(seq[1:])] - lse
    return float(np.sum(lp[len(lp) - n_cont:]))


def accuracies(records):
    hit = hit_norm = hit_bytes = 0
    for r in records:
        ll = np.array(r["loglik"])
        hit += int(np.argmax(ll) == r["gold"])
        hit_norm += int(np.argmax(ll / np.array(r["chars"], dtype=float)) == r["gold"])
        hit_bytes += int(np.argmax(ll / np.array(r["bytes"], dtype=float)) == r["gold"])
    n = len(records)
    return hit / n, hit_norm / n, hit_bytes / n


def run_one(data_dir, sp, model, w64, spec, cache):
    task = spec["task"]
    if task not in cache:
        cache[task] = load_task(data_dir, task)
    items = cache[task]
    records = []
    first_prompt = None
    for i in range(spec["items"]):
        ctxs, conts, texts, gold = items[i]
        rec = {"gold": gold, "loglik": [], "loglik_f64": [], "chars": [], "bytes": [],
               "n_cont": [], "n_ids": []}
        for c in range(len(conts)):
            ctx, cont = prompt(items, i, c, spec["shots"], spec["seed"])
            if i == 0 and c == 0:
                first_prompt = [ctx, cont]
            seq, n_cont = request(sp, ctx, cont)
            rec["loglik"].append(loglik(model, seq, n_cont))
            rec["loglik_f64"].append(loglik_f64(*w64, seq, n_cont))
            rec["chars"].append(len(texts[c]))
            rec["bytes"].append(len(texts[c].encode("utf-8")))
            rec["n_cont"].append(n_cont)
            rec["n_ids"].append(len(seq))
        records.append(rec)
    acc, acc_norm, acc_bytes = accuracies(records)
    worst = max(abs(a - b) for r in records for a, b in zip(r["loglik"], r["loglik_f64"]))
    if task == "winogrande":
        acc_norm = acc_bytes = acc
    out = {
        "task": task,
        "file": FILES[task],
        "shots": spec["shots"],
        "seed": spec["seed"],
        "context": CONTEXT,
        "n_items": len(records),
        "acc": acc,
        "acc_norm": acc_norm,
        "acc_bytes": acc_bytes,
        "max_abs_diff_f32_f64": worst,
    }
    if spec["shots"] > 0:
        out["first_prompt"] = first_prompt
    out["items"] = records
    print("%-14s %d-shot seed %-5d items %3d  acc %.4f  acc_norm %.4f  acc_bytes %.4f  "
          "f32-f64 %.1e" % (task, spec["shots"], spec["seed"], len(records), acc, acc_norm,
                             acc_bytes, worst))
    return out


def main():
    args = parse_ref_args(__doc__, __file__)
    torch.set_num_threads(1)
    sp = load_spm_without_whitespace_removal(os.path.join(args.data, TOKENIZER))
    assert sp.bos_id() == BOS
    model = load_hf(os.path.join(args.data, MODEL))
    w64 = gguf_weights(os.path.join(args.data, GGUF))
    cache = {}
    runs = [run_one(args.data, sp, model, w64, spec, cache) for spec in RUNS]
    doc = {
        "description": "reference log-likelihoods for lolcats-eval multiple-choice tasks, "
                       "computed with transformers LlamaForCausalLM in float32 (eager "
                       "attention) and SentencePiece; paths are relative to the shared test "
                       "data folder",
        "protocol": __doc__.split("documents, which follows lm-evaluation-harness:\n")[1]
                           .split("\nThe model is")[0].strip(),
        "model": MODEL,
        "tokenizer": TOKENIZER,
        "bos_id": BOS,
        "versions": versions(),
        "runs": runs,
    }
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    # one item per line
    text = re.sub(r"\{\s+\"gold\"[^{}]*?\}",
                  lambda m: re.sub(r"\s*\n\s*", " ", m.group(0)), text)
    json.loads(text)
    out = os.path.join(args.out, "eval_reference.json")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print("wrote", out, os.path.getsize(out), "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
