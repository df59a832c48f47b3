#!/usr/bin/env python3
"""A Llama model of a given shape with random bf16 weights, as a Hugging
Face folder, to run lolcats-train on large shapes without the real weights
(e.g. Llama 3.1 70B's layers on a machine that cannot hold 80 of them).

    make_random_model.py --config data/configs/llama-3.1-70b.json \\
        --layers 4 --tokenizer DIR --out DIR

The folder gets config.json (the given one with num_hidden_layers set),
model.safetensors (bf16; matrices uniform in +-1/sqrt(fan_in) like
PyTorch's nn.Linear default, the embedding and lm_head uniform in +-1,
norms 1; from --seed, written tensor by tensor so that memory stays
small), and the tokenizer files of --tokenizer (any tokenizer whose ids
fit the vocabulary).  Needs numpy only.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np


def bf16_bytes(a):
    """float32 array -> bf16 bytes, rounding to nearest even."""
    u = a.astype(np.float32).view(np.uint32)
    u = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (u >> np.uint32(16)).astype(np.uint16).tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="a Hugging Face config.json")
    ap.add_argument("--layers", type=int, help="num_hidden_layers (default: the config's)")
    ap.add_argument("--tokenizer", required=True,
                    help="folder whose tokenizer files are copied")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    cfg = json.load(open(a.config))
    if a.layers:
        cfg["num_hidden_layers"] = a.layers
    C = cfg["hidden_size"]
    FF = cfg["intermediate_size"]
    L = cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim", C // H)
    V = cfg["vocab_size"]
    tied = cfg.get("tie_word_embeddings", False)

    # (name, shape, bound; None = ones)
    tensors = [("model.embed_tokens.weight", (V, C), 1.0)]
    for l in range(L):
        p = "model.layers.%d." % l
        tensors += [
            (p + "input_layernorm.weight", (C,), None),
            (p + "self_attn.q_proj.weight", (H * D, C), C ** -0.5),
            (p + "self_attn.k_proj.weight", (Hkv * D, C), C ** -0.5),
            (p + "self_attn.v_proj.weight", (Hkv * D, C), C ** -0.5),
            (p + "self_attn.o_proj.weight", (C, H * D), (H * D) ** -0.5),
            (p + "post_attention_layernorm.weight", (C,), None),
            (p + "mlp.gate_proj.weight", (FF, C), C ** -0.5),
            (p + "mlp.up_proj.weight", (FF, C), C ** -0.5),
            (p + "mlp.down_proj.weight", (C, FF), FF ** -0.5),
        ]
    tensors.append(("model.norm.weight", (C,), None))
    if not tied:
        tensors.append(("lm_head.weight", (V, C), 1.0))

    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape, _ in tensors:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)

    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    path = os.path.join(a.out, "model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape, bound in tensors:
            if bound is None:
                f.write(bf16_bytes(np.ones(shape, dtype=np.float32)))
                continue
            # row blocks of at most 64M values
            rows = max(1, (64 << 20) // int(np.prod(shape[1:]) if len(shape) > 1 else 1))
            for r0 in range(0, shape[0], rows):
                part = (min(rows, shape[0] - r0),) + tuple(shape[1:])
                f.write(bf16_bytes(rng.uniform(-bound, bound, part).astype(np.float32)))
    os.replace(path + ".tmp", path)
    cfg["torch_dtype"] = "bfloat16"
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                 "special_tokens_map.json"):
        src = os.path.join(a.tokenizer, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(a.out, name))
    print("%s: %d layers, %.2f GB" % (a.out, L, (off + len(text) + 8) / 1e9))


if __name__ == "__main__":
    main()
