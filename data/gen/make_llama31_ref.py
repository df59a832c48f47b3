#!/usr/bin/env python3
"""A tiny Llama 3.1-shaped model in both file formats, and its reference logits.

Llama 3.1 scales its RoPE frequencies ("llama3" rope_scaling).  A Hugging
Face checkpoint states the scaling in config.json; llama.cpp's converter
instead stores one divisor per frequency in a GGUF tensor, rope_freqs.weight.
This script makes one small model with random weights and writes it both
ways, plus the logits transformers computes for it:

  data/ref/tiny-llama31-hf/config.json, model.safetensors (F16 weights)
  data/ref/tiny-llama31.gguf  (F16 weights, q/k rows in llama.cpp's
      interleaved order, rope_freqs.weight F32 [head_dim/2])
  data/ref/logits_tiny_llama31.safetensors
      ids                 I32 [2, 100]      token ids (BOS + random ids)
      logits              F32 [2, 100, 96]  transformers, float32, eager attention
      logits_default_rope F32 [2, 100, 96]  the same model without rope_scaling
                                            (a test can show it would notice)

The model: vocabulary 96, hidden 32, 4 heads of head_dim 16 (explicitly
set, not hidden/heads), 2 KV heads, FFN 48, 2 layers, untied lm_head,
rope_theta 10000 and llama3 scaling with factor 8, low/high frequency
factors 1 and 4, original context 64 -- so that over 100 positions some
frequencies are kept, some interpolated and some divided by 8.  Weights are
drawn with std 0.25 (so that attention is sharp and RoPE matters), rounded
to float16; both files hold the same float16 values.

Checks: the independent float64 numpy forward of the GGUF that the other
generators use (make_logits_ref.numpy_forward: interleaved RoPE on the GGUF
q/k rows, here each frequency divided by rope_freqs as llama.cpp does)
equals the transformers logits, and the default-RoPE logits differ by far
more than that.

Run:  python3 data/gen/make_llama31_ref.py [--out DIR]
"""

import json
import math
import os
import sys

import gguf
import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_logits_ref import gguf_weights, numpy_forward  # noqa: E402
from refcommon import parse_ref_args, save_file, versions  # noqa: E402

S = 2
T = 100
SEED = 31
TOL_NUMPY = 1e-5

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 96,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "hidden_act": "silu",
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float16",
}


def make_weights():
    """Hugging Face name -> float16 numpy array, from a seeded generator."""
    c = CONFIG
    C, F, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    D = c["head_dim"]
    QD, KD = c["num_attention_heads"] * D, c["num_key_value_heads"] * D
    rng = np.random.default_rng(SEED)

    def mat(rows, cols, std=0.25):
        return (rng.standard_normal((rows, cols)) * std).astype(np.float16)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float16)

    w = {"model.embed_tokens.weight": mat(V, C, 1.0)}
    for layer in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        w[p + "input_layernorm.weight"] = norm(C)
        w[p + "self_attn.q_proj.weight"] = mat(QD, C)
        w[p + "self_attn.k_proj.weight"] = mat(KD, C)
        w[p + "self_attn.v_proj.weight"] = mat(KD, C)
        w[p + "self_attn.o_proj.weight"] = mat(C, QD)
        w[p + "post_attention_layernorm.weight"] = norm(C)
        w[p + "mlp.gate_proj.weight"] = mat(F, C)
        w[p + "mlp.up_proj.weight"] = mat(F, C)
        w[p + "mlp.down_proj.weight"] = mat(C, F)
    w["model.norm.weight"] = norm(C)
    w["lm_head.weight"] = mat(V, C)
    return w


def hf_model(weights, scaled=True):
    cfg = dict(CONFIG)
    if not scaled:
        del cfg["rope_scaling"]
    cfg.pop("torch_dtype")
    model = LlamaForCausalLM(LlamaConfig(**cfg, attn_implementation="eager"))
    state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    return model.float().eval()


def hf_logits(model, ids):
    with torch.no_grad():
        return np.stack([model(torch.from_numpy(row[None].astype(np.int64))).logits[0].double().numpy()
                         for row in ids])


def rope_factors():
    """llama.cpp's rope_freqs for llama3 scaling: inv_freq[i] is divided by it."""
    c = CONFIG
    rs = c["rope_scaling"]
    D = c["head_dim"]
    freqs = 1.0 / (c["rope_theta"] ** (np.arange(0, D, 2, dtype=np.float64) / D))
    low_wavelen = rs["original_max_position_embeddings"] / rs["low_freq_factor"]
    high_wavelen = rs["original_max_position_embeddings"] / rs["high_freq_factor"]
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(rs["factor"])
        else:
            smooth = ((rs["original_max_position_embeddings"] / wavelen - rs["low_freq_factor"])
                      / (rs["high_freq_factor"] - rs["low_freq_factor"]))
            out.append(1.0 / ((1 - smooth) / rs["factor"] + smooth))
    return np.array(out, dtype=np.float32)


def permute_qk(w, n_head):
    """Hugging Face rotate-half rows -> llama.cpp's interleaved rows."""
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def write_gguf(weights, path):
    c = CONFIG
    wr = gguf.GGUFWriter(path, "llama")
    wr.add_name("tiny-llama31")
    wr.add_context_length(c["max_position_embeddings"])
    wr.add_embedding_length(c["hidden_size"])
    wr.add_block_count(c["num_hidden_layers"])
    wr.add_feed_forward_length(c["intermediate_size"])
    wr.add_head_count(c["num_attention_heads"])
    wr.add_head_count_kv(c["num_key_value_heads"])
    wr.add_key_length(c["head_dim"])
    wr.add_value_length(c["head_dim"])
    wr.add_rope_dimension_count(c["head_dim"])
    wr.add_rope_freq_base(c["rope_theta"])
    wr.add_layer_norm_rms_eps(c["rms_norm_eps"])
    wr.add_vocab_size(c["vocab_size"])
    wr.add_tensor("rope_freqs.weight", rope_factors())
    wr.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    for layer in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        g = "blk.%d." % layer
        wr.add_tensor(g + "attn_norm.weight", weights[p + "input_layernorm.weight"])
        wr.add_tensor(g + "attn_q.weight", permute_qk(weights[p + "self_attn.q_proj.weight"],
                                                      c["num_attention_heads"]))
        wr.add_tensor(g + "attn_k.weight", permute_qk(weights[p + "self_attn.k_proj.weight"],
                                                      c["num_key_value_heads"]))
        wr.add_tensor(g + "attn_v.weight", weights[p + "self_attn.v_proj.weight"])
        wr.add_tensor(g + "attn_output.weight", weights[p + "self_attn.o_proj.weight"])
        wr.add_tensor(g + "ffn_norm.weight", weights[p + "post_attention_layernorm.weight"])
        wr.add_tensor(g + "ffn_gate.weight", weights[p + "mlp.gate_proj.weight"])
        wr.add_tensor(g + "ffn_up.weight", weights[p + "mlp.up_proj.weight"])
        wr.add_tensor(g + "ffn_down.weight", weights[p + "mlp.down_proj.weight"])
    wr.add_tensor("output_norm.weight", weights["model.norm.weight"])
    wr.add_tensor("output.weight", weights["lm_head.weight"])
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def write_hf(weights, folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(weights, os.path.join(folder, "model.safetensors"),
              metadata={"format": "pt"})


def main():
    args = parse_ref_args(__doc__, __file__)
    torch.manual_seed(0)
    weights = make_weights()
    hf_dir = os.path.join(args.out, "tiny-llama31-hf")
    gguf_path = os.path.join(args.out, "tiny-llama31.gguf")
    write_hf(weights, hf_dir)
    write_gguf(weights, gguf_path)

    rng = np.random.default_rng(SEED + 1)
    ids = np.concatenate([np.ones((S, 1), dtype=np.int64),
                          rng.integers(3, CONFIG["vocab_size"], size=(S, T - 1))], axis=1)
    logits = hf_logits(hf_model(weights), ids)
    plain = hf_logits(hf_model(weights, scaled=False), ids)
    # the GGUF file alone, in float64: interleaved RoPE on its q/k rows, each
    # frequency divided by its rope_freqs factor as llama.cpp does
    w64, cfg64 = gguf_weights(gguf_path)
    assert cfg64["head_dim"] == CONFIG["head_dim"] and cfg64["rope_factors"] is not None
    ref = np.stack([numpy_forward(w64, cfg64, row) for row in ids])
    err = float(np.max(np.abs(ref - logits)))
    scale = float(np.max(np.abs(ref)))
    ctl = float(np.max(np.abs(plain - logits)))
    print("max|transformers f32 - numpy f64 of the GGUF| = %.3g (max|logit| %.3g); "
          "without rope_scaling the logits move by %.3g" % (err, scale, ctl))
    assert err <= TOL_NUMPY * max(1.0, scale), err
    assert ctl > 1000 * TOL_NUMPY * max(1.0, scale), ctl

    meta = {
        "model": "tiny-llama31-hf (transformers LlamaForCausalLM, float32, eager attention)",
        "ids": "each row: BOS (1) + numpy default_rng(%d).integers(3, %d, size=(%d, %d)) "
               "row; each run alone, positions 0..%d, causal"
               % (SEED + 1, CONFIG["vocab_size"], S, T - 1, T - 1),
        "logits_default_rope": "the same weights with rope_scaling removed from the config",
        "check_numpy_gguf": "max abs diff to a numpy float64 forward of tiny-llama31.gguf "
                            "(rope_freqs divisors) = %.3g; default RoPE moves the logits by "
                            "%.3g" % (err, ctl),
    }
    meta.update(versions())
    out = os.path.join(args.out, "logits_tiny_llama31.safetensors")
    save_file({
        "ids": ids.astype(np.int32),
        "logits": logits.astype(np.float32),
        "logits_default_rope": plain.astype(np.float32),
    }, out, metadata=meta)
    for p in (os.path.join(hf_dir, "model.safetensors"), gguf_path, out):
        print("wrote", p, os.path.getsize(p), "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
