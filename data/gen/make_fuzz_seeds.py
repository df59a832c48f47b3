#!/usr/bin/env python3
"""Small fuzz seeds derived from real files (tests/fuzz/seeds).

Most seeds are made at fuzz time by tests/fuzz/make-seeds.sh from the
shared test data; these few need more than a shell cut, so they are
committed:
  - gguf/, tok_gguf/: stories260K.gguf's metadata (its tok512 vocabulary)
    without the tensors: a vocabulary-only GGUF, as llama.cpp's
    ggml-vocab-*.gguf files are;
  - tok_gpt2/: bbpe-small's vocabulary and merges (data/tokenizers) as
    encoder.json + vocab.bpe;
  - st_index/: a weight_map for the two shards the harness writes.
Usage: make_fuzz_seeds.py SHARED_DATA_DIR REPO_DIR
"""
import json
import os
import struct
import sys


def gguf_vocab_only(src, dst):
    with open(src, "rb") as f:
        b = f.read()
    assert b[:4] == b"GGUF"
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", b, 4)
    pos = 24
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_value(p, t):
        if t in sizes:
            return p + sizes[t]
        if t == 8:
            (n,) = struct.unpack_from("<Q", b, p)
            return p + 8 + n
        assert t == 9
        et, n = struct.unpack_from("<IQ", b, p)
        p += 12
        for _ in range(n):
            p = skip_value(p, et)
        return p

    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", b, pos)
        pos += 8 + n
        (t,) = struct.unpack_from("<I", b, pos)
        pos = skip_value(pos + 4, t)
    out = b[:4] + struct.pack("<IQQ", version, 0, n_kv) + b[24:pos]
    with open(dst, "wb") as f:
        f.write(out)


def gpt2_from_tokenizer_json(src, dst):
    j = json.load(open(src, encoding="utf-8"))
    vocab = j["model"]["vocab"]
    merges = j["model"]["merges"]
    lines = ["#version: 0.2"]
    for m in merges:
        lines.append(m if isinstance(m, str) else " ".join(m))
    with open(dst, "wb") as f:
        f.write(json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
        f.write(b"\n--vocab.bpe--\n")
        f.write(("\n".join(lines) + "\n").encode("utf-8"))


def main():
    shared, repo = sys.argv[1], sys.argv[2]
    seeds = os.path.join(repo, "tests", "fuzz", "seeds")
    for d in ("gguf", "tok_gguf", "tok_gpt2", "st_index"):
        os.makedirs(os.path.join(seeds, d), exist_ok=True)
    src = os.path.join(shared, "models", "stories260K", "stories260K.gguf")
    gguf_vocab_only(src, os.path.join(seeds, "tok_gguf", "stories260K-vocab.gguf"))
    gguf_vocab_only(src, os.path.join(seeds, "gguf", "stories260K-vocab.gguf"))
    gpt2_from_tokenizer_json(
        os.path.join(repo, "data", "tokenizers", "bbpe-small", "tokenizer.json"),
        os.path.join(seeds, "tok_gpt2", "bbpe-small"))
    index = {"metadata": {"total_size": 48},
             "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "model.norm.weight": "model-00001-of-00002.safetensors",
                            "lm_head.weight": "model-00002-of-00002.safetensors"}}
    with open(os.path.join(seeds, "st_index", "two-shards.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
