#!/usr/bin/env python3
"""Reference logits of the Llama forward pass, from PyTorch + transformers.

Writes
  data/ref/logits_stories260K.safetensors
      ids        I32 [3, 72]        token ids of the three sequences
      logits     F32 [3, 72, 512]   all logits, every position
      greedy_ids I32 [32]           greedy continuation of BOS (ids only, BOS excluded)
  data/ref/logits_tiny_random.safetensors
      ids        I32 [3, 72]
      cols       I32 [256]          vocab columns kept: range(0, 32000, 125)
      logits     F32 [3, 72, 256]   logits[..., cols]
      logsumexp  F32 [3, 72]        log-sum-exp over all 32000 logits
      argmax     I32 [3, 72]        argmax over all 32000 logits
      margin     F32 [3, 72]        top-1 minus top-2 logit (near ties make argmax fragile)

Each sequence is run on its own with positions 0..T-1 (a fresh context, no
padding, causal mask).  Sequence 0 is BOS + SentencePiece encoding of the start
of tinystories_val.txt, 1 is BOS + uniform random ids, 2 is text from the
middle of that file WITHOUT a BOS.  The safetensors __metadata__ describes
each sequence and records library versions and the checks that passed.

Models (under the shared data folder, --data):
  stories260K: models/stories260K-hf (transformers LlamaForCausalLM, float32,
  eager attention).  Cross-checked against an independent numpy forward of
  models/stories260K/stories260K.gguf, and greedy decoding from BOS must give
  the 32 ids listed in the data README.
  llama-2-tiny-random: models/llama-2-tiny-random/llama-2-tiny-random.gguf
  loaded by transformers' GGUF support (F16 dequantized, llama.cpp's q/k row
  permutation undone), float32.  Cross-checked against the numpy forward,
  which reads the GGUF tensors with the gguf package and applies
  interleaved-pair RoPE directly to the GGUF q/k rows.

Run:  python3 data/gen/make_logits_ref.py [--data DIR] [--out DIR]
"""

import os
import sys

import numpy as np
import torch
import sentencepiece
import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refcommon import load_hf, parse_ref_args, save_file, versions  # noqa: E402

S = 3
T = 72
RANDOM_SEED = 1234
# max |HF float32 - numpy float64| allowed on logits, times max(1, max|logit|)
TOL_NUMPY = 1e-5

GREEDY_EXPECTED = [
    403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
    401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
]

VAL_TXT = "text/tinystories/tinystories_val.txt"


def line_start_at_or_after(data, pos):
    """First line start >= pos (0, or just after a '\\n')."""
    if pos <= 0:
        return 0
    j = data.find(b"\n", pos - 1)
    if j < 0:
        return len(data)
    return j + 1


def text_excerpt(data, start, nbytes=4096):
    """Whole lines of data beginning at byte start, about nbytes long."""
    end = data.rfind(b"\n", start, start + nbytes) + 1
    assert end > start
    return data[start:end].decode("utf-8"), end


def make_sequences(data, sp, vocab, rng_seed, bos=1):
    """The three sequences (ids, descriptions) for one tokenizer."""
    seqs = []
    descs = []

    text, end = text_excerpt(data, 0)
    ids = [bos] + sp.encode(text)
    assert len(ids) >= T
    seqs.append(ids[:T])
    descs.append("BOS + sentencepiece encode of %s bytes [0, %d) (whole lines), "
                 "first %d ids" % (VAL_TXT, end, T))

    rng = np.random.default_rng(rng_seed)
    rnd = rng.integers(3, vocab, size=T - 1)
    seqs.append([bos] + [int(x) for x in rnd])
    descs.append("BOS + %d ids from numpy default_rng(%d).integers(3, %d, size=%d)"
                 % (T - 1, rng_seed, vocab, T - 1))

    start = line_start_at_or_after(data, len(data) // 2)
    while data[start:start + 1] == b"\n":
        start += 1
    text, end = text_excerpt(data, start)
    ids = sp.encode(text)
    assert len(ids) >= T
    assert ids[0] != bos
    seqs.append(ids[:T])
    descs.append("NO BOS: sentencepiece encode of %s bytes [%d, %d) (first non-empty "
                 "line at or after size//2), first %d ids" % (VAL_TXT, start, end, T))
    return np.array(seqs, dtype=np.int64), descs


def hf_logits(model, ids):
    """[S, T, V] logits, each sequence run on its own (positions 0..T-1)."""
    out = []
    with torch.no_grad():
        for row in ids:
            x = torch.tensor(row, dtype=torch.long).unsqueeze(0)
            out.append(model(x).logits[0].double().numpy())
    return np.stack(out)


# --- independent numpy forward (float64) from GGUF tensors -----------------

def gguf_field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.parts[f.data[0]][0].item()


def gguf_weights(path):
    reader = gguf.GGUFReader(path)
    w = {}
    for t in reader.tensors:
        # t.data is [ne1][ne0] = [out][in] for matrices; F16 and F32 only here.
        assert t.tensor_type in (gguf.GGMLQuantizationType.F32,
                                 gguf.GGMLQuantizationType.F16), t.name
        w[t.name] = np.array(t.data, dtype=np.float64)
    n_head = gguf_field(reader, "llama.attention.head_count")
    cfg = {
        "n_layer": gguf_field(reader, "llama.block_count"),
        "n_head": n_head,
        "n_kv": gguf_field(reader, "llama.attention.head_count_kv"),
        "eps": gguf_field(reader, "llama.attention.layer_norm_rms_epsilon"),
        "theta": gguf_field(reader, "llama.rope.freq_base", 10000.0),
        "head_dim": gguf_field(reader, "llama.attention.key_length",
                               w["token_embd.weight"].shape[1] // n_head),
        # Llama 3.1 scaling as llama.cpp stores it: inv_freq[i] / rope_freqs[i]
        "rope_factors": w.get("rope_freqs.weight"),
    }
    if "output.weight" not in w:
        w["output.weight"] = w["token_embd.weight"]
    return w, cfg


def rmsnorm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def rope(x, theta, interleaved, factors=None):
    """x [T, H, D]; rotate by position.  interleaved: pairs (2i, 2i+1)
    (Meta / llama.cpp GGUF row layout); else rotate-half pairs (i, i + D/2).
    factors [D/2] (optional): each frequency divided by its factor."""
    t, _, d = x.shape
    inv = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)   # [D/2]
    if factors is not None:
        inv = inv / factors
    ang = np.arange(t, dtype=np.float64)[:, None] * inv[None, :]  # [T, D/2]
    c = np.cos(ang)[:, None, :]
    s = np.sin(ang)[:, None, :]
    y = np.empty_like(x)
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        y[..., 0::2] = a * c - b * s
        y[..., 1::2] = a * s + b * c
    else:
        a, b = x[..., : d // 2], x[..., d // 2:]
        y[..., : d // 2] = a * c - b * s
        y[..., d // 2:] = a * s + b * c
    return y


def numpy_forward(w, cfg, ids, interleaved=True):
    """Logits [T, V] in float64 for one sequence of ids (positions 0..T-1)."""
    x = w["token_embd.weight"][ids]                    # [T, C]
    t, c = x.shape
    nh, nkv = cfg["n_head"], cfg["n_kv"]
    hd = cfg["head_dim"]
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for layer in range(cfg["n_layer"]):
        p = "blk.%d." % layer
        h = rmsnorm(x, w[p + "attn_norm.weight"], cfg["eps"])
        q = (h @ w[p + "attn_q.weight"].T).reshape(t, nh, hd)
        k = (h @ w[p + "attn_k.weight"].T).reshape(t, nkv, hd)
        v = (h @ w[p + "attn_v.weight"].T).reshape(t, nkv, hd)
        q = rope(q, cfg["theta"], interleaved, cfg["rope_factors"])
        k = rope(k, cfg["theta"], interleaved, cfg["rope_factors"])
        att = np.empty((t, nh, hd))
        for hh in range(nh):
            kv = hh // (nh // nkv)
            sc = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hd) + mask   # [T, T]
            sc = np.exp(sc - sc.max(axis=1, keepdims=True))
            sc /= sc.sum(axis=1, keepdims=True)
            att[:, hh, :] = sc @ v[:, kv, :]
        x = x + att.reshape(t, nh * hd) @ w[p + "attn_output.weight"].T
        h = rmsnorm(x, w[p + "ffn_norm.weight"], cfg["eps"])
        g = h @ w[p + "ffn_gate.weight"].T
        u = h @ w[p + "ffn_up.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
    x = rmsnorm(x, w["output_norm.weight"], cfg["eps"])
    return x @ w["output.weight"].T


def check_against_numpy(name, gguf_path, ids, logits):
    """Assert HF logits == numpy forward of the GGUF (interleaved RoPE on the
    GGUF rows); show that rotate-half on the same rows would be caught."""
    w, cfg = gguf_weights(gguf_path)
    ref = np.stack([numpy_forward(w, cfg, row, True) for row in ids])
    bad = np.stack([numpy_forward(w, cfg, row, False) for row in ids])
    err = float(np.max(np.abs(ref - logits)))
    ctl = float(np.max(np.abs(bad - logits)))
    scale = float(np.max(np.abs(ref)))
    print("%s: max|HF f32 - numpy f64| = %.3g (max|logit| %.3g); "
          "control with rotate-half on GGUF rows: %.3g" % (name, err, scale, ctl))
    tol = TOL_NUMPY * max(1.0, scale)
    assert err <= tol, (err, tol)
    assert ctl > 10 * tol, (ctl, tol)
    return err, ctl


def greedy(model, n, bos=1):
    """Greedy decoding from BOS by re-running the whole prefix each step."""
    ids = [bos]
    with torch.no_grad():
        for _ in range(n):
            lg = model(torch.tensor([ids], dtype=torch.long)).logits[0, -1]
            ids.append(int(torch.argmax(lg)))
    return ids[1:]


def stories(data_dir, out_dir):
    hf_dir = os.path.join(data_dir, "models/stories260K-hf")
    model = load_hf(hf_dir)
    sp = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(hf_dir, "tokenizer.model"))
    assert sp.vocab_size() == 512 and sp.bos_id() == 1
    data = open(os.path.join(data_dir, VAL_TXT), "rb").read()
    ids, descs = make_sequences(data, sp, 512, RANDOM_SEED)

    logits = hf_logits(model, ids)
    err, ctl = check_against_numpy(
        "stories260K", os.path.join(data_dir, "models/stories260K/stories260K.gguf"),
        ids, logits)

    g = greedy(model, 32)
    print("stories260K greedy:", " ".join(map(str, g)))
    print("  text:", repr(sp.decode(g)))
    assert g == GREEDY_EXPECTED, g

    meta = {
        "model": "models/stories260K-hf (transformers LlamaForCausalLM, float32, eager attention)",
        "seq0": descs[0],
        "seq1": descs[1],
        "seq2": descs[2],
        "positions": "each sequence run alone, positions 0..%d, causal" % (T - 1),
        "greedy": "greedy_ids: argmax decoding from BOS alone, 32 new ids (BOS not included)",
        "check_numpy_gguf": "max abs diff to a numpy float64 forward of "
                            "models/stories260K/stories260K.gguf = %.3g" % err,
    }
    meta.update(versions())
    out = os.path.join(out_dir, "logits_stories260K.safetensors")
    save_file({
        "ids": ids.astype(np.int32),
        "logits": logits.astype(np.float32),
        "greedy_ids": np.array(g, dtype=np.int32),
    }, out, metadata=meta)
    print("wrote", out, os.path.getsize(out), "bytes")


def tiny_random(data_dir, out_dir):
    mdir = os.path.join(data_dir, "models/llama-2-tiny-random")
    gguf_name = "llama-2-tiny-random.gguf"
    model = load_hf(mdir, gguf_file=gguf_name)
    sp = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(data_dir, "tokenizers/llama2-spm/tokenizer.model"))
    assert sp.vocab_size() == 32000 and sp.bos_id() == 1
    data = open(os.path.join(data_dir, VAL_TXT), "rb").read()
    ids, descs = make_sequences(data, sp, 32000, RANDOM_SEED)

    logits = hf_logits(model, ids)
    err, ctl = check_against_numpy("tiny-random", os.path.join(mdir, gguf_name),
                                   ids, logits)

    cols = np.arange(0, 32000, 125)
    assert cols.size == 256
    m = logits.max(axis=-1, keepdims=True)
    lse = (m[..., 0] + np.log(np.exp(logits - m).sum(axis=-1)))
    top2 = np.sort(logits, axis=-1)[..., -2:]
    margin = top2[..., 1] - top2[..., 0]
    print("tiny-random: smallest top1-top2 margin %.3g" % float(margin.min()))

    meta = {
        "model": "models/llama-2-tiny-random/llama-2-tiny-random.gguf (transformers "
                 "LlamaForCausalLM from_pretrained(gguf_file=...), float32, eager attention)",
        "tokenizer": "tokenizers/llama2-spm/tokenizer.model",
        "seq0": descs[0],
        "seq1": descs[1],
        "seq2": descs[2],
        "positions": "each sequence run alone, positions 0..%d, causal" % (T - 1),
        "cols": "logits keeps vocab columns range(0, 32000, 125); logsumexp, argmax "
                "and margin (top1 - top2) are over all 32000 columns",
        "check_numpy_gguf": "max abs diff to a numpy float64 forward with interleaved "
                            "RoPE on the GGUF q/k rows = %.3g (rotate-half on those "
                            "rows would differ by %.3g)" % (err, ctl),
    }
    meta.update(versions())
    out = os.path.join(out_dir, "logits_tiny_random.safetensors")
    save_file({
        "ids": ids.astype(np.int32),
        "cols": cols.astype(np.int32),
        "logits": logits[..., cols].astype(np.float32),
        "logsumexp": lse.astype(np.float32),
        "argmax": logits.argmax(axis=-1).astype(np.int32),
        "margin": margin.astype(np.float32),
    }, out, metadata=meta)
    print("wrote", out, os.path.getsize(out), "bytes")


def main():
    args = parse_ref_args(__doc__, __file__)
    torch.manual_seed(0)
    stories(args.data, args.out)
    tiny_random(args.data, args.out)
    return 0

if __name__ == "__main__":
    sys.exit(main())
