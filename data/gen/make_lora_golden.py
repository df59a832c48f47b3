#!/usr/bin/env python3
"""Golden loss and gradients of stage 2 (LoRA on the linearized model) for
stories260K, from an implementation written directly with torch autograd
in float64 from the method doc's formulas (independent of the C code and of
transformers), saved as float32 safetensors.

    python3 data/gen/make_lora_golden.py [--data DIR] [OUT]

DIR is the shared test data folder (default ../shared/data beside the
repository); OUT defaults to data/ref/lora_golden.safetensors.

The model (models/stories260K-hf/model.safetensors, Llama, tied lm_head):
  x = embed[ids]; per layer:
    xn = rmsnorm(x) * w;  q = xn Wq^T + (alpha/r) (xn A_q^T) B_q^T  (k, v alike)
    RoPE (rotate-half, fp32 tables as transformers) on q and k
    phi(x) = clamp_min([softmax(x W_h), softmax(-x W_h)], 1e-12), W [H, D, f],
             key head h reads KV head h // (H // Hkv)
    hybrid attention (method doc 3.3; DESIGN.md section 6): window
      terraced = own block of W tokens (blocks aligned to the sequence START)
      causally plus the whole previous block, sliding = the W most recent
      keys; linear keys = the other causal ones; window scores
      s = q.k / sqrt(D) stabilized by their own max only,
      y = (sum_win g e^{s-m} v + sum_lin (fq.fk) v) / (same without v),
      g = sigmoid(theta_h)
    x += att Wo^T + (alpha/r) (att A_o^T) B_o^T
    x += down(silu(gate(rmsnorm(x))) * up(rmsnorm(x)))
  logits = rmsnorm(x) embed^T
  loss = mean over targets >= 0 of cross-entropy(logits[i], targets[i])

Inputs: B = 2 rows of T = 160 tokens (row 0: BOS + the start of
tinystories_val.txt; row 1: seeded random ids), targets = the next token of
each row with some positions ignored (-1, as prompt tokens are), the last
position of each row ignored.  Feature maps: the identity initialization
plus seeded noise; window factors ln(1/9) plus noise; LoRA rank 8, alpha
16 on q, k, v, o with A ~ U(-1/sqrt(in), 1/sqrt(in)) and B ~ N(0, 0.01^2)
(non-zero, so that every gradient is non-zero); window 64.

Stored: ids, targets (I32 [B, T]), config (I32 [window, rank, feature_dim]),
alpha (F32 [1]), the feature maps under their lolcats key names,
lora.{l}.{q,k,v,o}.{A,B}, and for mode in (terraced, sliding): {mode}.loss
and {mode}.grad.lora.{l}.{t}.{A,B}; for terraced also the gradients of the
feature maps and window factors (terraced.grad.feature_map_q.{l},
...feature_map_k.{l}, ...theta.{l}).
"""
import json
import math
import os
import sys

import numpy as np
import sentencepiece as spm
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refcommon import hedgehog, masks  # noqa: E402

B, T, WIN, FDIM, RANK, ALPHA = 2, 160, 64, 64, 8, 16.0
EPS_FMAP = 1e-12
TARGETS = ("q", "k", "v", "o")


def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope_tables(head_dim, theta, n):
    # float32 as transformers computes them, then used in float64
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    ang = torch.arange(n, dtype=torch.int64).float()[:, None] * inv[None, :]
    return ang.cos().double(), ang.sin().double()


def rope(x, cos, sin):
    """x [B, T, h, D], rotate-half pairs (i, i + D/2)"""
    half = x.shape[-1] // 2
    c = torch.cat([cos, cos], -1)[None, :, None, :]
    s = torch.cat([sin, sin], -1)[None, :, None, :]
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * c + rot * s


def hybrid(q, k, v, fq, fk, theta, mode):
    H, Hkv, D = q.shape[2], k.shape[2], q.shape[3]
    rep = H // Hkv
    kh = k.repeat_interleave(rep, dim=2)
    vh = v.repeat_interleave(rep, dim=2)
    _, win, lin = masks(q.shape[1], mode, WIN)
    s = torch.einsum("bihd,bjhd->bhij", q, kh) / math.sqrt(D)
    sw = s.masked_fill(~win, float("-inf"))
    m = torch.amax(sw, dim=-1, keepdim=True)
    e = torch.sigmoid(theta).view(1, H, 1, 1) * torch.exp(sw - m)
    lw = torch.einsum("bihf,bjhf->bhij", fq, fk) * lin
    w = e + lw
    z = w.sum(-1, keepdim=True)
    return torch.einsum("bhij,bjhd->bihd", w, vh) / z.permute(0, 2, 1, 3)


def forward(wt, cfg, ids, targets, fm, lora, mode):
    C, H, Hkv, D = cfg["C"], cfg["H"], cfg["Hkv"], cfg["D"]
    eps = cfg["eps"]
    scale = ALPHA / RANK
    cos, sin = rope_tables(D, cfg["rope_theta"], T)

    def proj(x, w, l, t):
        a, b = lora[(l, t)]
        return x @ w.T + scale * (x @ a.T) @ b.T

    x = wt["model.embed_tokens.weight"][ids]
    for l in range(cfg["L"]):
        p = f"model.layers.{l}."
        xn = rmsnorm(x, wt[p + "input_layernorm.weight"], eps)
        q = proj(xn, wt[p + "self_attn.q_proj.weight"], l, "q").view(B, T, H, D)
        k = proj(xn, wt[p + "self_attn.k_proj.weight"], l, "k").view(B, T, Hkv, D)
        v = proj(xn, wt[p + "self_attn.v_proj.weight"], l, "v").view(B, T, Hkv, D)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        wq, wk, theta = fm[l]
        fq, fk = hedgehog(q, wq, H, EPS_FMAP), hedgehog(k, wk, H, EPS_FMAP)
        att = hybrid(q, k, v, fq, fk, theta, mode)
        att = att.reshape(B, T, H * D)
        x = x + proj(att, wt[p + "self_attn.o_proj.weight"], l, "o")
        xn = rmsnorm(x, wt[p + "post_attention_layernorm.weight"], eps)
        g = xn @ wt[p + "mlp.gate_proj.weight"].T
        u = xn @ wt[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ wt[p + "mlp.down_proj.weight"].T
    xf = rmsnorm(x, wt["model.norm.weight"], eps)
    logits = xf @ wt["model.embed_tokens.weight"].T
    return torch.nn.functional.cross_entropy(
        logits.reshape(B * T, -1), targets.reshape(-1).long(), ignore_index=-1, reduction="mean"
    )


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    data = os.path.join(here, "..", "..", "..", "shared", "data")
    if len(args) >= 2 and args[0] == "--data":
        data, args = args[1], args[2:]
    out = args[0] if args else os.path.join(here, "..", "ref", "lora_golden.safetensors")

    mdir = os.path.join(data, "models", "stories260K-hf")
    with open(os.path.join(mdir, "config.json")) as fp:
        hc = json.load(fp)
    cfg = {
        "L": hc["num_hidden_layers"], "C": hc["hidden_size"], "H": hc["num_attention_heads"],
        "Hkv": hc["num_key_value_heads"], "D": hc["head_dim"], "eps": hc["rms_norm_eps"],
        "rope_theta": hc["rope_theta"], "V": hc["vocab_size"],
    }
    wt = {k: torch.from_numpy(v).double() for k, v in
          load_file(os.path.join(mdir, "model.safetensors")).items()}
    L, C, H, Hkv, D = cfg["L"], cfg["C"], cfg["H"], cfg["Hkv"], cfg["D"]
    g = torch.Generator().manual_seed(20251128)

    def f32(x):
        # float32-representable values, used in float64
        return x.float().double()

    # inputs: real text and random ids
    sp = spm.SentencePieceProcessor(model_file=os.path.join(mdir, "tokenizer.model"))
    with open(os.path.join(data, "text", "tinystories", "tinystories_val.txt"), "rb") as fp:
        text = fp.read(4000).decode("utf-8", errors="ignore")
    row0 = ([1] + sp.encode(text))[: T + 1]
    rnd = torch.randint(3, cfg["V"], (T + 1,), generator=g).tolist()
    seqs = torch.tensor([row0, rnd], dtype=torch.int64)
    ids = seqs[:, :T].contiguous()
    targets = seqs[:, 1:].clone()
    targets[0, :24] = -1           # a "prompt" whose tokens are not predicted
    targets[1, ::7] = -1
    targets[:, T - 1] = -1         # the last position predicts nothing in its chunk

    # feature maps near the identity initialization, window factors near ln(1/9)
    fm = []
    fm_leaves = []
    for _ in range(L):
        eye = torch.zeros(H, D, FDIM, dtype=torch.float64)
        for i in range(min(D, FDIM)):
            eye[:, i, i] = 1.0
        wq = f32(eye + 0.1 * torch.randn(H, D, FDIM, generator=g, dtype=torch.float64))
        wk = f32(eye + 0.1 * torch.randn(H, D, FDIM, generator=g, dtype=torch.float64))
        th = f32(math.log(1 / 9) + 0.5 * torch.randn(H, generator=g, dtype=torch.float64))
        fm.append((wq, wk, th))
    ins = {"q": C, "k": C, "v": C, "o": H * D}
    outs = {"q": H * D, "k": Hkv * D, "v": Hkv * D, "o": C}
    lora = {}
    for l in range(L):
        for t in TARGETS:
            bound = 1.0 / math.sqrt(ins[t])
            a = f32((torch.rand(RANK, ins[t], generator=g, dtype=torch.float64) * 2 - 1) * bound)
            b = f32(0.01 * torch.randn(outs[t], RANK, generator=g, dtype=torch.float64))
            lora[(l, t)] = (a, b)

    tensors = {
        "ids": ids.to(torch.int32).contiguous(),
        "targets": targets.to(torch.int32).contiguous(),
        "config": torch.tensor([WIN, RANK, FDIM], dtype=torch.int32),
        "alpha": torch.tensor([ALPHA], dtype=torch.float32),
    }
    for l in range(L):
        p = f"model.layers.{l}.self_attn."
        tensors[p + "feature_map_q.mlp.layer"] = fm[l][0].float().contiguous()
        tensors[p + "feature_map_k.mlp.layer"] = fm[l][1].float().contiguous()
        tensors[p + "window_factors"] = fm[l][2].float().view(1, H, 1, 1).contiguous()
        for t in TARGETS:
            tensors[f"lora.{l}.{t}.A"] = lora[(l, t)][0].float().contiguous()
            tensors[f"lora.{l}.{t}.B"] = lora[(l, t)][1].float().contiguous()

    summary = []
    for mode in ("terraced", "sliding"):
        lv = {key: (a.clone().requires_grad_(True), b.clone().requires_grad_(True))
              for key, (a, b) in lora.items()}
        fv = [tuple(x.clone().requires_grad_(mode == "terraced") for x in layer) for layer in fm]
        loss = forward(wt, cfg, ids, targets, fv, lv, mode)
        loss.backward()
        tensors[f"{mode}.loss"] = torch.tensor([loss.item()], dtype=torch.float32)
        for (l, t), (a, b) in lv.items():
            tensors[f"{mode}.grad.lora.{l}.{t}.A"] = a.grad.float().contiguous()
            tensors[f"{mode}.grad.lora.{l}.{t}.B"] = b.grad.float().contiguous()
        if mode == "terraced":
            for l, (wq, wk, th) in enumerate(fv):
                tensors[f"{mode}.grad.feature_map_q.{l}"] = wq.grad.float().contiguous()
                tensors[f"{mode}.grad.feature_map_k.{l}"] = wk.grad.float().contiguous()
                tensors[f"{mode}.grad.theta.{l}"] = th.grad.float().contiguous()
        summary.append(f"{mode} loss {loss.item():.7f}")

    # one metadata entry: several would be ordered at random, and the file
    # should be the same bytes on every run
    meta = {
        "lora_golden": f"generator=data/gen/make_lora_golden.py torch={torch.__version__} "
        f"numpy={np.__version__} B={B} T={T} window={WIN} f={FDIM} rank={RANK} alpha={ALPHA} "
        + "; ".join(summary)
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_file(tensors, out, metadata=meta)
    print(f"{os.path.normpath(out)}: {len(tensors)} tensors, {os.path.getsize(out)} bytes; "
          + "; ".join(summary))


if __name__ == "__main__":
    main()
