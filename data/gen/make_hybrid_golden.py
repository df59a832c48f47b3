#!/usr/bin/env python3
"""Golden outputs for the Hedgehog feature maps and the hybrid window
attention, from an implementation written directly with torch autograd in
float64 (independent of the C code), saved as float32 safetensors.

    python3 data/gen/make_hybrid_golden.py [OUT]

OUT defaults to data/ref/hybrid_golden.safetensors beside this folder.

Semantics (DESIGN.md section 6):
  phi(x)  = clamp_min([softmax(x W_h), softmax(-x W_h)], eps), W [H, D, f];
            key head h reads KV head h // (H // Hkv), each query head has
            its own W.
  blocks  of W tokens aligned to the sequence start, block(p) = p // W.
  window  terraced: j <= i and block(j) >= block(i) - 1;
          sliding:  i - W < j <= i.   linear keys: the other j <= i.
  s_ij    = q_i . k_j / sqrt(D);  m_i = amax of s_ij over the window
  y_i     = (sum_win g e^{s-m} v + sum_lin (fq.fk) v) / (same sums
            without v), g = sigmoid(theta_h).
  xent    = CrossEntropyLoss(log(clamp(A_pred, 1e-12)), A_true) per row,
            A_true the causal softmax of s (teacher, no gradient),
            A_pred the normalized hybrid weights.

One input sequence of N_MAX tokens is stored; a case of n tokens uses its
first n tokens (the attention is causal, so the forward of a prefix is the
prefix of the forward: y and the xent row losses are stored once per mode).
Gradients are stored for every (mode, n): loss sum(dy * y) for the
attention, the sum of the row losses for xent, with the feature maps in the
graph (so dq and dk include the path through phi).
"""
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refcommon import hedgehog, masks  # noqa: E402

B, H, HKV, D, FDIM, WIN = 1, 4, 2, 8, 4, 64
EPS = 1e-12
NS = [1, 5, 63, 64, 65, 200]
N_MAX = max(NS)
MODES = ["terraced", "sliding"]


def attention(q, k, v, fq, fk, theta, mode):
    """returns y [B, n, H, D], the student weights A_pred [B, H, n, n] and
    the scores s [B, H, n, n]"""
    n = q.shape[1]
    rep = H // HKV
    kh = k.repeat_interleave(rep, dim=2)
    vh = v.repeat_interleave(rep, dim=2)
    causal, win, lin = masks(n, mode, WIN)
    s = torch.einsum("bihd,bjhd->bhij", q, kh) / D**0.5
    sw = s.masked_fill(~win, float("-inf"))
    m = torch.amax(sw, dim=-1, keepdim=True)
    gamma = torch.sigmoid(theta).view(1, H, 1, 1)
    e = gamma * torch.exp(sw - m)
    lw = torch.einsum("bihf,bjhf->bhij", fq, fk) * lin
    w = e + lw
    z = w.sum(dim=-1, keepdim=True)
    y = torch.einsum("bhij,bjhd->bihd", w, vh) / z.permute(0, 2, 1, 3)
    return y, w / z, s


def xent_rows(a_pred, s):
    n = s.shape[-1]
    causal, _, _ = masks(n, "terraced", WIN)
    a_true = torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1).detach()
    logits = a_pred.clamp(min=1e-12).log()
    rows = torch.nn.functional.cross_entropy(
        logits.reshape(-1, n), a_true.reshape(-1, n), reduction="none"
    )
    return rows.view(B, H, n).permute(0, 2, 1)  # [B, n, H]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "ref", "hybrid_golden.safetensors")
    if len(sys.argv) > 1:
        out = sys.argv[1]
    g = torch.Generator().manual_seed(20250101)

    def rnd(*shape, scale=1.0, shift=0.0):
        # float32-representable values, used in float64
        x = torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift
        return x.float().double()

    inputs = {
        "q": rnd(B, N_MAX, H, D),
        "k": rnd(B, N_MAX, HKV, D),
        "v": rnd(B, N_MAX, HKV, D),
        "dy": rnd(B, N_MAX, H, D),
        "W_q": rnd(H, D, FDIM, scale=0.5),
        "W_k": rnd(H, D, FDIM, scale=0.5),
        "theta": rnd(H, shift=1.0),
    }
    # one key pair tied for the window max of a row with linear keys
    # (terraced: row 131 sees blocks 1 and 2 by softmax, block 0 linearly)
    inputs["k"][:, 129] = inputs["k"][:, 130] = 1.5
    inputs["q"][:, 131] = 2.0 / D**0.5
    tensors = {name: t.float().contiguous() for name, t in inputs.items()}

    fq_all = hedgehog(inputs["q"], inputs["W_q"], H, EPS)
    fk_all = hedgehog(inputs["k"], inputs["W_k"], H, EPS)
    tensors["fq"] = fq_all.float().contiguous()
    tensors["fk"] = fk_all.float().contiguous()

    for mode in MODES:
        for n in NS:
            leaves = {}
            for name in ("q", "k", "v"):
                leaves[name] = inputs[name][:, :n].clone().requires_grad_(True)
            for name in ("W_q", "W_k", "theta"):
                leaves[name] = inputs[name].clone().requires_grad_(True)
            fq = hedgehog(leaves["q"], leaves["W_q"], H, EPS)
            fk = hedgehog(leaves["k"], leaves["W_k"], H, EPS)
            y, a_pred, s = attention(
                leaves["q"], leaves["k"], leaves["v"], fq, fk, leaves["theta"], mode
            )
            loss = (y * inputs["dy"][:, :n]).sum()
            grads = torch.autograd.grad(
                loss, [leaves[x] for x in ("q", "k", "v", "W_q", "W_k", "theta")], retain_graph=True
            )
            pre = f"{mode}.n{n}."
            for name, gr in zip(("dq", "dk", "dv", "dW_q", "dW_k", "dtheta"), grads):
                tensors[pre + name] = gr.float().contiguous()

            rows = xent_rows(a_pred, s)
            xg = torch.autograd.grad(rows.sum(), [leaves[x] for x in ("W_q", "W_k", "theta")])
            for name, gr in zip(("xent_dW_q", "xent_dW_k", "xent_dtheta"), xg):
                tensors[pre + name] = gr.float().contiguous()
            if n == N_MAX:
                tensors[f"{mode}.y"] = y.detach().float().contiguous()
                tensors[f"{mode}.xent_rows"] = rows.detach().float().contiguous()

    # one metadata entry: the writer orders several at random, and the file
    # should be the same bytes on every run
    meta = {
        "hybrid_golden": f"generator=data/gen/make_hybrid_golden.py torch={torch.__version__} "
        f"B={B} H={H} Hkv={HKV} D={D} f={FDIM} window={WIN} eps={EPS!r} "
        f"n={','.join(str(n) for n in NS)}"
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_file(tensors, out, metadata=meta)
    print(f"{os.path.normpath(out)}: {len(tensors)} tensors, {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
