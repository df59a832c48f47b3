#!/usr/bin/env python3
"""Expected token streams of the data pipeline for the stories260K tokenizer.

Tokenizes the shared TinyStories and alpaca-cleaned files the way the
LoLCATs reference code does (src/dataloaders/alpaca_clean.py:
template_and_tokenize; with the slow Llama tokenizer that is SentencePiece
itself), and writes sizes and FNV-1a hashes of the streams to
data/ref/data_stories260k.json, which tests/test_data.c compares with.

    python data/gen/make_data_ref.py /path/to/shared/data
"""
import json
import math
import os
import sys

import sentencepiece as spm

PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")

BLOCK = 4096  # tokens per block hash, to locate a first difference


def fnv1a(values):
    h = 0xcbf29ce484222325
    for v in values:
        h ^= v & 0xffffffff
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def describe(ids, labels=None):
    out = {"n": len(ids), "ids_fnv": fnv1a(ids),
           "blocks_fnv": [fnv1a(ids[i:i + BLOCK]) for i in range(0, len(ids), BLOCK)]}
    if labels is not None:
        out["labels_fnv"] = fnv1a(labels)
    return out


def text_cut(data, val_fraction):
    at = math.floor((1.0 - val_fraction) * len(data))
    if at <= 0:
        return 0
    if at >= len(data):
        return len(data)
    while at < len(data) and data[at - 1] != ord("\n"):
        at += 1
    return at


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
    sp = spm.SentencePieceProcessor(
        model_file=os.path.join(shared, "models/stories260K-hf/tokenizer.model"))
    bos, eos = sp.bos_id(), sp.eos_id()
    ref = {"tokenizer": "models/stories260K-hf", "bos": bos, "eos": eos}

    # plain text: val_fraction 0.1, each part one stream with BOS once
    raw = open(os.path.join(shared, "text/tinystories/tinystories_val.txt"), "rb").read()
    cut = text_cut(raw, 0.1)
    train = [bos] + sp.encode(raw[:cut].decode("utf-8"))
    val = [bos] + sp.encode(raw[cut:].decode("utf-8"))
    ref["text"] = {"file": "text/tinystories/tinystories_val.txt", "val_fraction": 0.1,
                   "bytes": len(raw), "cut": cut, "train": describe(train),
                   "val": describe(val), "train_first": train[:64]}

    # Alpaca: rows 0-199 held out; BOS + prompt (-100), output + EOS (labeled)
    recs = json.load(open(os.path.join(shared, "text/alpaca-cleaned/alpaca_data_cleaned.json"),
                          encoding="utf-8"))
    streams = {"val": ([], []), "train": ([], [])}
    lengths = []
    for i, r in enumerate(recs):
        tmpl = PROMPT_INPUT if r.get("input", "") != "" else PROMPT_NO_INPUT
        prompt = [bos] + sp.encode(tmpl.format_map(r))
        answer = sp.encode(r["output"]) + [eos]
        ids, labels = streams["val" if i < 200 else "train"]
        ids += prompt + answer
        labels += [-100] * len(prompt) + answer
        lengths.append([len(prompt), len(answer)])
    ref["alpaca"] = {"file": "text/alpaca-cleaned/alpaca_data_cleaned.json", "val_records": 200,
                     "records": len(recs),
                     "with_input": sum(1 for r in recs if r.get("input", "") != ""),
                     "train": describe(*streams["train"]), "val": describe(*streams["val"]),
                     "lengths": lengths}

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref",
                       "data_stories260k.json")
    with open(out, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", out, "text", len(train), len(val), "alpaca",
          len(streams["train"][0]), len(streams["val"][0]))


if __name__ == "__main__":
    main()
