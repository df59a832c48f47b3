#!/usr/bin/env python3
"""Expected token streams of the data pipeline for the stories260K tokenizer.

Tokenizes the shared TinyStories and alpaca-cleaned files the way the
LoLCATs reference code does (src/dataloaders/alpaca_clean.py:
template_and_tokenize, which loads the fast tokenizer through
AutoTokenizer), and writes sizes and FNV-1a hashes of the streams to
data/ref/data_stories260k.json, which tests/test_data.c compares with.

The tokenizer is data/tokenizers/tok512-hf/tokenizer.json, the stories260K
tokenizer.model as transformers converts it (data/gen/make_tokenizers.py).
Unlike SentencePiece itself, the conversion does not apply the model's
remove_extra_whitespaces (runs of spaces are kept), and neither does
lolcats.

    python data/gen/make_data_ref.py /path/to/shared/data
"""
import json
import math
import os
import sys

from tokenizers import Tokenizer

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
    here = os.path.dirname(os.path.abspath(__file__))
    tok = Tokenizer.from_file(os.path.join(here, "..", "tokenizers", "tok512-hf",
                                           "tokenizer.json"))
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")

    def encode(text, special=False):
        return tok.encode(text, add_special_tokens=special).ids

    ref = {"tokenizer": "models/stories260K-hf (data/tokenizers/tok512-hf)", "bos": bos, "eos": eos}

    # plain text: val_fraction 0.1, each part one stream with BOS once
    raw = open(os.path.join(shared, "text/tinystories/tinystories_val.txt"), "rb").read()
    cut = text_cut(raw, 0.1)
    train = encode(raw[:cut].decode("utf-8"), True)
    val = encode(raw[cut:].decode("utf-8"), True)
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
        # as the reference: the prompt with add_special_tokens=True, the
        # answer as output + the EOS string without
        prompt = encode(tmpl.format_map(r), True)
        answer = encode(r["output"] + "</s>")
        assert prompt[0] == bos and prompt[1:] == encode(tmpl.format_map(r))
        assert answer == encode(r["output"]) + [eos]
        ids, labels = streams["val" if i < 200 else "train"]
        ids += prompt + answer
        labels += [-100] * len(prompt) + answer
        lengths.append([len(prompt), len(answer)])
    ref["alpaca"] = {"file": "text/alpaca-cleaned/alpaca_data_cleaned.json", "val_records": 200,
                     "records": len(recs),
                     "with_input": sum(1 for r in recs if r.get("input", "") != ""),
                     "train": describe(*streams["train"]), "val": describe(*streams["val"]),
                     "lengths": lengths}

    out = os.path.join(here, "..", "ref", "data_stories260k.json")
    with open(out, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", out, "text", len(train), len(val), "alpaca",
          len(streams["train"][0]), len(streams["val"][0]))


if __name__ == "__main__":
    main()
