#!/usr/bin/env python3
"""PEFT compatibility of the adapter lolcats-train writes (it trains
nothing itself).

    python3 data/gen/check_peft_adapter.py --model MODEL DIR

MODEL is the Hugging Face base model folder given to lolcats-train, DIR the
output folder of a lolcats-train run with --merge.  The script

  1. loads MODEL with transformers (float32) and applies DIR's adapter with
     peft.PeftModel.from_pretrained (adapter_config.json +
     adapter_model.safetensors), which fails on unexpected or missing keys;
  2. checks that PEFT loaded every lora_A / lora_B tensor of the file
     unchanged, and merges (merge_and_unload);
  3. compares PEFT's merged q/k/v/o weights with DIR/merged/model.safetensors
     (lolcats-train --merge) and prints the largest difference, and checks
     that every other weight is the base model's unchanged;
  4. loads DIR/merged as a plain model with transformers and compares its
     logits with those of the PEFT model on a few sequences.

It exits 1 when a difference exceeds its tolerance (1e-5 relative to the
weights' scale; 1e-4 on logits for float32 models).  The output of one run is
recorded in data/ref/peft_check.txt (see the command there).
"""
import argparse
import os
import sys
import warnings

import peft
import torch
import transformers
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

PROJ = ("q_proj", "k_proj", "v_proj", "o_proj")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the base model folder")
    ap.add_argument("dir", help="lolcats-train output folder (run with --merge)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}")
    print(f"base model: {os.path.basename(os.path.normpath(args.model))}")

    adapter = load_file(os.path.join(args.dir, "adapter_model.safetensors"))
    ours = load_file(os.path.join(args.dir, "merged", "model.safetensors"))
    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    base_sd = {k: v.clone() for k, v in base.state_dict().items()}
    model = PeftModel.from_pretrained(base, args.dir)
    cfg = model.peft_config["default"]
    print(f"adapter: r {cfg.r}, lora_alpha {cfg.lora_alpha}, lora_dropout {cfg.lora_dropout}, "
          f"target_modules {sorted(cfg.target_modules)}, {len(adapter)} tensors")
    ok = True

    # 2. PEFT holds exactly the file's tensors
    sd = model.state_dict()
    loaded = 0
    for name, t in adapter.items():
        key = name.replace(".weight", ".default.weight")
        if key not in sd or not torch.equal(sd[key].float(), t.float()):
            print(f"FAIL: PEFT did not load {name} as stored")
            ok = False
        loaded += 1
    n_lora = sum(1 for k in sd if ".lora_A." in k or ".lora_B." in k)
    if n_lora != loaded:
        print(f"FAIL: PEFT holds {n_lora} LoRA tensors, the file {loaded}")
        ok = False
    print(f"PEFT loaded all {loaded} adapter tensors unchanged")

    # logits of the adapted model (softmax attention) before merging
    V = model.config.vocab_size
    ids = torch.randint(3, V, (3, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        peft_logits = model(input_ids=ids).logits

    # 3. merged weights
    merged = model.merge_and_unload()
    msd = merged.state_dict()
    worst = 0.0
    changed = 0.0
    for name, w in msd.items():
        if name not in ours:
            if name == "lm_head.weight" and merged.config.tie_word_embeddings:
                continue
            print(f"FAIL: {name} missing from merged/model.safetensors")
            ok = False
            continue
        o = ours[name].float()
        if any(name.endswith(f"self_attn.{p}.weight") for p in PROJ):
            diff = (w.float() - o).abs().max().item()
            scale = w.float().abs().max().item()
            changed = max(changed, (w.float() - base_sd[name].float()).abs().max().item())
            worst = max(worst, diff / scale)
            if diff > 1e-5 * scale:
                print(f"FAIL: {name}: max |PEFT - lolcats| = {diff:.3g} (scale {scale:.3g})")
                ok = False
        elif not torch.equal(w, ours[name]):
            print(f"FAIL: {name} is not the base model's")
            ok = False
    print(f"merged q/k/v/o projections: max |PEFT merge - lolcats --merge| / max |W| = "
          f"{worst:.3g} (the adapter moves them by up to {changed:.3g})")
    if changed == 0.0:
        print("FAIL: the adapter changes nothing (B = 0): train it first")
        ok = False

    # 4. the merged folder as a plain model
    plain = AutoModelForCausalLM.from_pretrained(os.path.join(args.dir, "merged"),
                                                 dtype=torch.float32)
    with torch.no_grad():
        plain_logits = plain(input_ids=ids).logits
    d = (plain_logits - peft_logits).abs().max().item()
    print(f"logits of merged/ loaded by transformers vs the PEFT model: max abs diff {d:.3g} "
          f"(max |logit| {peft_logits.abs().max().item():.3g})")
    if d > 1e-4 * max(1.0, peft_logits.abs().max().item()):
        print("FAIL: the merged folder does not compute the adapted model")
        ok = False
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
