#!/usr/bin/env python3
"""Small tokenizer.json files and the ids the Hugging Face library gives.

Writes, under data/tokenizers/:
  tok512-hf/tokenizer.json, tok512-hf/tokenizer_config.json
      the stories260K "tok512" SentencePiece vocabulary converted by
      transformers' LlamaTokenizerFast (pre_tokenizer Metaspace, prepend
      scheme "always", decoder Replace/ByteFallback/Fuse/Strip).
  tok512-legacy.json
      the same model with the older Llama 2 layout: normalizer
      Prepend("▁") + Replace(" " -> "▁"), no pre_tokenizer.
  tok512-first.json
      the same model with Metaspace prepend scheme "first" and split=True
      (decoder ByteFallback + Metaspace).
  bbpe-small/tokenizer.json
      a byte-level BPE (656 tokens: 256 bytes, 400 merges) trained by the
      tokenizers library on the first 60 kB of tinystories_val.txt, with
      Llama 3's Split regex + ByteLevel(use_regex=False) pre-tokenizer,
      ignore_merges, 8 frequent words added to the vocabulary without
      merges (so that only ignore_merges makes them one token), three
      special tokens (<|begin_of_text|> as BOS,
      <|end_of_text|>, <|eot_id|>) and one non-special added token.
  expected_ids.json
      for each tokenizer, test strings with the ids the tokenizers library
      gives: without special-token parsing (encode_special_tokens = True),
      with it, with BOS (add_special_tokens=True), and the decoded text of
      the plain ids.

Needs: transformers, tokenizers, sentencepiece and protobuf (the conversion
from tokenizer.model goes through sentencepiece's protobuf classes).

Run:  python3 data/gen/make_tokenizers.py [--data DIR] [--out DIR]
      (--data: the shared data folder, default ../shared/data from the
      repository root)
"""

import argparse
import copy
import json
import os

import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Strings every tokenizer is checked on.  Special-token spellings appear in
# some of them: they are plain text without special parsing and single ids
# with it.
COMMON = [
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n\n",
    " \n \n",
    "Hello world",
    " Hello world",
    "  Hello  world  ",
    "Hello, y'all! How are you 😁 ?",
    "I'VE been 'told he's there, 'RE you sure? 'M not sure I'll make it, "
    "'D you like some tea? We'Ve a'lL",
    "Once upon a time, there was a little girl named Lily.",
    "3 33 333 3333 33333 1234567890",
    "Führer naïve café déjà vu",
    "нещо на Български",
    "ááááá",
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅",
    "the\u00a0nbsp, the\u3000ideographic space, next\u0085line",
    "tab\tand\r\nwindows\r\nlines",
    "   leading and trailing   ",
    "!!!!!! ...... ?????? ``````",
    "\u2581literal metaspace \u2581\u2581 twice",
    "a" * 300,
    "lowered: hello HELLO HeLLo",
]


def tinystories_paragraphs(data_dir, n):
    path = os.path.join(data_dir, "text/tinystories/tinystories_val.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    paras = [p for p in text.split("\n\n") if p.strip()]
    # spread over the file, a few whole paragraphs joined by blank lines
    step = max(1, len(paras) // n)
    return [paras[i] + "\n\n" + paras[i + 1] for i in range(0, step * n, step)]


def cases_for(tok, strings):
    """ids of each string: plain, with special parsing, with BOS."""
    out = []
    for s in strings:
        tok.encode_special_tokens = True
        plain = tok.encode(s, add_special_tokens=False).ids
        bos = tok.encode(s, add_special_tokens=True).ids
        tok.encode_special_tokens = False
        special = tok.encode(s, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        decoded = tok.decode(plain, skip_special_tokens=False)
        out.append({"text": s, "ids": plain, "ids_special": special, "ids_bos": bos,
                    "decoded": decoded})
    return out


def make_tok512(data_dir, out_dir):
    src = os.path.join(data_dir, "models/stories260K-hf")
    fast = transformers.LlamaTokenizerFast.from_pretrained(src)
    folder = os.path.join(out_dir, "tok512-hf")
    os.makedirs(folder, exist_ok=True)
    fast.save_pretrained(folder)
    # keep only what the C loader reads from the folder
    for name in os.listdir(folder):
        if name not in ("tokenizer.json", "tokenizer_config.json"):
            os.remove(os.path.join(folder, name))
    base = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    assert base.pre_tokenizer is not None, "expected a Metaspace pre_tokenizer"

    legacy = copy.deepcopy(base)
    legacy.normalizer = normalizers.Sequence(
        [normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    legacy.pre_tokenizer = None
    legacy.decoder = decoders.Sequence([
        decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(" ", 1, 0)])
    legacy.save(os.path.join(out_dir, "tok512-legacy.json"))

    first = copy.deepcopy(base)
    first.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="first", split=True)
    first.decoder = decoders.Sequence([
        decoders.ByteFallback(),
        decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)])
    first.save(os.path.join(out_dir, "tok512-first.json"))
    return {"tok512-hf": base, "tok512-legacy.json": legacy, "tok512-first.json": first}


def make_bbpe(data_dir, out_dir):
    path = os.path.join(data_dir, "text/tinystories/tinystories_val.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read()[:60000]
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=656, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.split("\n\n"), trainer)
    tok, words = add_whole_words(tok, text, 8)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in
                            ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>")])
    tok.add_tokens([AddedToken("<custom>", special=False, normalized=False)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
    folder = os.path.join(out_dir, "bbpe-small")
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    return tok, words


def add_whole_words(tok, text, n):
    """Adds n frequent words that merges split into several tokens to the
    vocabulary, without merges: only ignore_merges makes them one token
    (as with words of Llama 3's vocabulary).  Returns the words."""
    counts = {}
    for word, _ in tok.pre_tokenizer.pre_tokenize_str(text):
        counts[word] = counts.get(word, 0) + 1
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    words = []
    byte_dec = decoders.ByteLevel()
    for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        text_word = byte_dec.decode([word])
        if word not in vocab and len(tok.encode(text_word).ids) >= 2:
            vocab[word] = len(vocab)
            words.append(text_word)
            if len(words) == n:
                break
    return Tokenizer.from_str(json.dumps(spec)), words


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(root), "shared", "data"))
    ap.add_argument("--out", default=os.path.join(root, "data", "tokenizers"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    stories = tinystories_paragraphs(args.data, 6)
    result = {"generator": {"tokenizers": tokenizers.__version__,
                            "transformers": transformers.__version__},
              "tokenizers": {}}

    sp_strings = COMMON + stories + [
        "<s>Hello</s> world", "a<s>b", "a<s> b", " <s> x", "<unk><s></s>", "<s"]
    for name, tok in make_tok512(args.data, args.out).items():
        result["tokenizers"][name] = cases_for(tok, sp_strings)

    bbpe, im = make_bbpe(args.data, args.out)
    bb_strings = COMMON + stories + [" ".join(im), "".join(im)] + [
        "<|begin_of_text|>Hi<|eot_id|>", "x<|end_of_text|> y", "<custom> and <custom>x",
        "<|begin_of_text|><|begin_of_text|>", "<|eot_id", "<|reserved_special_token_0|>"]
    result["tokenizers"]["bbpe-small"] = cases_for(bbpe, bb_strings)
    result["ignore_merges_words"] = im

    with open(os.path.join(args.out, "expected_ids.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=True, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
