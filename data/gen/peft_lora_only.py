#!/usr/bin/env python3
"""Cross-check of lolcats-train's lora-only stage (the same LoRA on the
original model, the yardstick of stage 2) against PyTorch + PEFT, on
stories260K and TinyStories with lolcats-train's defaults: context 512, the
last 10% of the text held out, LoRA r 8, alpha 16 on q, k, v, o, AdamW lr
1e-4, 8 micro-batches of one chunk per step, 2 epochs (174 steps), an
evaluation every 100 steps and at the end, the best evaluation kept.

    lolcats-train -m MODEL -d TEXT -o INIT --stage lora-only --max-steps 0 --no-summary
    lolcats-train -m MODEL -d TEXT -o OURS --stage lora-only
    python3 data/gen/peft_lora_only.py --data SHARED_DATA --init INIT OURS

SHARED_DATA is the shared test data folder (models/stories260K-hf,
text/tinystories/tinystories_val.txt).  INIT holds the adapter of a run
without steps: lolcats-train's initial A (B = 0).  The script

  1. tokenizes the text as lolcats-train does (the split at a line start
     after 90% of the bytes as data/gen/make_data_ref.py, each part one
     SentencePiece stream with BOS in front as data/gen/make_ppl_ref.py),
     cuts 512-token chunks and orders them per epoch with a port of
     lc_shuffle (seed 0);
  2. trains PEFT's LoRA (peft.get_peft_model on the transformers model,
     float32) from INIT's A with torch.optim.AdamW on the same
     micro-batches, and keeps the weights of the best evaluation (mean over
     the held-out chunks of their mean next-token NLL);
  3. prints the held-out perplexity (windows of 512 tokens, as the summary
     of lolcats-train) of the teacher, of the PEFT-trained model, and of
     the model with OURS' adapter loaded by PeftModel.from_pretrained, and
     how far OURS' adapter is from PEFT's.

The output of one run is recorded in data/ref/peft_lora_only.txt.
"""
import argparse
import math
import os
import sys
import warnings

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_data_ref import text_cut  # noqa: E402
from refcommon import load_spm_without_whitespace_removal  # noqa: E402

T, ACCUM, EPOCHS, EVAL_EVERY, LR, SEED = 512, 8, 2, 100, 1e-4, 0
PROJ = ["q_proj", "k_proj", "v_proj", "o_proj"]
MASK = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def lc_shuffle(n, seed, epoch):
    """src/core/data.c: Fisher-Yates with a counter-based stream"""
    key = mix64(mix64(seed) ^ epoch)
    counter = 0
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        bound = i + 1
        threshold = ((1 << 64) - bound) % bound
        while True:
            counter += 1
            r = mix64((key + counter * GOLDEN_GAMMA) & MASK)
            if r >= threshold:
                break
        j = r % bound
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def chunk_nll(model, chunk):
    """mean next-token NLL of one chunk (every token but the first predicted)"""
    ids = torch.tensor(chunk)[None]
    logits = model(input_ids=ids).logits[0, :-1].float()
    return torch.nn.functional.cross_entropy(logits, ids[0, 1:])


@torch.no_grad()
def validation(model, val_chunks):
    return sum(chunk_nll(model, c).item() for c in val_chunks) / len(val_chunks)


@torch.no_grad()
def perplexity(model, stream):
    total, count = 0.0, 0
    for i in range(0, len(stream), T):
        w = stream[i:i + T]
        if len(w) < 2:
            break
        total += chunk_nll(model, w).item() * (len(w) - 1)
        count += len(w) - 1
    return math.exp(total / count)


def lora_tensors(model):
    out = {}
    for k, v in model.state_dict().items():
        if ".lora_A." in k or ".lora_B." in k:
            out[k.replace(".default.weight", ".weight")] = v.detach().clone()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the shared test data folder")
    ap.add_argument("--init", required=True, help="lora-only run with --max-steps 0")
    ap.add_argument("ours", help="lora-only run with the defaults")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}")
    model_dir = os.path.join(args.data, "models", "stories260K-hf")

    # 1. data as lolcats-train cuts it
    sp = load_spm_without_whitespace_removal(os.path.join(model_dir, "tokenizer.model"))
    raw = open(os.path.join(args.data, "text", "tinystories", "tinystories_val.txt"), "rb").read()
    cut = text_cut(raw, 0.1)
    train = [sp.bos_id()] + sp.encode(raw[:cut].decode("utf-8"))
    val = [sp.bos_id()] + sp.encode(raw[cut:].decode("utf-8"))
    train_chunks = [train[i:i + T] for i in range(0, len(train) // T * T, T)]
    val_chunks = [val[i:i + T] for i in range(0, len(val) // T * T, T)]
    steps_per_epoch = (len(train_chunks) + ACCUM - 1) // ACCUM
    total = EPOCHS * steps_per_epoch
    print(f"data: {len(train)} train tokens ({len(train_chunks)} chunks), {len(val)} held-out "
          f"tokens ({len(val_chunks)} chunks); {total} steps")

    # 2. PEFT LoRA from lolcats-train's initial A
    base = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    teacher_ppl = perplexity(base, val)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                            target_modules=PROJ, bias="none",
                                            task_type="CAUSAL_LM"))
    init = load_file(os.path.join(args.init, "adapter_model.safetensors"))
    sd = model.state_dict()
    with torch.no_grad():
        for name, t in init.items():
            key = name.replace(".weight", ".default.weight")
            assert key in sd, key
            sd[key].copy_(t.float())
    assert all(float(t.abs().max()) == 0 for n, t in init.items() if "lora_B" in n)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    best, best_weights = math.inf, None
    step, epoch, mb = 0, 0, 0
    perm = lc_shuffle(len(train_chunks), SEED, 0)

    def evaluate():
        nonlocal best, best_weights
        v = validation(model, val_chunks)
        if v < best:
            best, best_weights = v, lora_tensors(model)
        print(f"step {step}: validation loss {v:.6f}")

    evaluate()
    while step < total:
        n_mb = min(ACCUM, len(train_chunks) - mb)
        opt.zero_grad()
        for i in range(n_mb):
            (chunk_nll(model, train_chunks[perm[mb + i]]) / n_mb).backward()
        opt.step()
        step += 1
        mb += n_mb
        if mb >= len(train_chunks):
            epoch, mb = epoch + 1, 0
            perm = lc_shuffle(len(train_chunks), SEED, epoch)
        if step % EVAL_EVERY == 0 or step == total:
            evaluate()
    with torch.no_grad():
        sd = model.state_dict()
        for name, t in best_weights.items():
            sd[name.replace(".weight", ".default.weight")].copy_(t)
    peft_ppl = perplexity(model, val)

    # 3. lolcats-train's adapter in PEFT
    ours = load_file(os.path.join(args.ours, "adapter_model.safetensors"))
    base2 = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    ours_model = PeftModel.from_pretrained(base2, args.ours)
    ours_ppl = perplexity(ours_model, val)
    worst = {"lora_A": 0.0, "lora_B": 0.0}
    for name, t in best_weights.items():
        kind = "lora_A" if "lora_A" in name else "lora_B"
        o = ours[name].float()
        worst[kind] = max(worst[kind], ((t - o).abs().max() / t.abs().max()).item())
    print(f"held-out perplexity (context {T}, {len(val)} tokens)")
    print(f"  teacher                                   {teacher_ppl:.4f}")
    print(f"  teacher + LoRA, trained by PEFT           {peft_ppl:.4f}")
    print(f"  teacher + LoRA, lolcats-train's adapter   {ours_ppl:.4f}   "
          f"(ratio {ours_ppl / peft_ppl:.5f})")
    print(f"lolcats-train's adapter vs PEFT's, max |difference| / max |PEFT's| per tensor: "
          f"A {worst['lora_A']:.3g}, B {worst['lora_B']:.3g}")


if __name__ == "__main__":
    main()
