#!/usr/bin/env python3
"""Tokenizer round trips of lolcats beside llama.cpp's (and transformers').

For each GGUF vocabulary of the shared test data (llama.cpp loads it with
vocab_only=True), and for Llama 3's byte-level BPE (encoder.json +
vocab.bpe, which this script writes as a vocabulary-only GGUF for
llama.cpp, checked first against llama.cpp's own test cases
ggml-vocab-llama-bpe.gguf.inp/.out), encodes the tricky texts of the round-trip promise
(lolcats.h, lc_tokenizer_decode; lolcats(7)): literal U+2581, runs of
spaces, leading and trailing spaces, newlines and tabs, invalid UTF-8,
NUL bytes, special-token spellings; then decodes the ids.  lolcats is
called through its shared library (ctypes) on the same GGUF file (Llama 3:
on the encoder.json + vocab.bpe folder).  When transformers is installed,
the Hugging Face tokenizer of the same SentencePiece vocabulary (the
folder's tokenizer.model as AutoTokenizer converts it) joins in: it takes
text only, so not the invalid UTF-8.

What it showed (llama-cpp-python 0.3.36, transformers 5.25): lolcats and
llama.cpp give the same ids, with and without BOS, and the same decoded
text for every valid UTF-8 text; transformers agrees with both on the
Llama 2 vocabulary, and on tok512 drops one leading space and a leading
U+2581 (its conversion of tokenizer.model prepends U+2581 only to a text
that does not start with one).  On invalid UTF-8 llama.cpp takes as many
bytes as a lead byte announces, so "\xff" swallows the U+2581 of a
following space, which its decode gives back as those three bytes: a
changed text, where lolcats keeps the text.  On Llama 3's vocabulary the
two agree on every text, invalid UTF-8 included: byte-level BPE spells
every byte.

Prints, per text, where the three differ (ids without and with BOS, the
decoded text of the ids without BOS), and writes
data/tokenizers/llamacpp_roundtrip.json: for every vocabulary and text
(hex), llama.cpp's ids without and with BOS and its decoded text (hex),
which tests/test_tokenizer.c checks lolcats against (make check needs no
Python).

Needs: llama-cpp-python (built from source: pip install llama-cpp-python),
gguf (pip install gguf), optionally transformers + sentencepiece + protobuf.

Run:  python3 data/gen/compare_llamacpp_tok.py --lib BUILD/.libs/liblolcats.so
          [--data ../shared/data] [--out data/tokenizers/llamacpp_roundtrip.json]
"""

import argparse
import ctypes
import json
import os
import sys
import tempfile

import llama_cpp

# name, GGUF file for llama.cpp (in the shared data; None: written from the
# lolcats path), what lolcats opens (None: the GGUF file), a folder with the
# same vocabulary as tokenizer.model for transformers (None: not compared)
VOCABS = [
    ("llama2-spm", "tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf", None,
     "tokenizers/llama2-spm"),
    ("tok512", "models/stories260K/stories260K.gguf", None, "models/stories260K-hf"),
    ("llama3-bpe", None, "tokenizers/llama3-bpe", None),
]

# Llama 3.1 / 3.2 special tokens after the 128000 of encoder.json, as their
# tokenizer.json names them (and lolcats' tok_hf.c)
LLAMA3_NAMED = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 4: "<|finetune_right_pad_id|>",
                6: "<|start_header_id|>", 7: "<|end_header_id|>", 8: "<|eom_id|>",
                9: "<|eot_id|>", 10: "<|python_tag|>"}


def llama3_gguf(folder, path):
    """Writes encoder.json + vocab.bpe as llama.cpp's vocabulary-only GGUF
    of Llama 3 (tokenizer model gpt2, pre-tokenizer llama-bpe), and checks
    it against llama.cpp's own expected ids for its test texts."""
    import gguf

    with open(os.path.join(folder, "encoder.json"), encoding="utf-8") as f:
        enc = json.load(f)
    tokens = [None] * len(enc)
    for piece, i in enc.items():
        tokens[i] = piece
    for i in range(256):
        reserved = i - 2 if i < 4 else 2 if i == 5 else i - 8
        tokens.append(LLAMA3_NAMED.get(i, "<|reserved_special_token_%d|>" % reserved))
    with open(os.path.join(folder, "vocab.bpe"), encoding="utf-8") as f:
        merges = [line.rstrip("\n") for line in f
                  if line.strip() and not line.startswith("#version")]
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("llama-bpe")
    # a Llama 3.2 1B's shape: llama.cpp reads these even for a vocabulary
    w.add_block_count(16)
    w.add_context_length(131072)
    w.add_embedding_length(2048)
    w.add_feed_forward_length(8192)
    w.add_head_count(32)
    w.add_head_count_kv(8)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(64)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types([1] * len(enc) + [3] * 256)
    w.add_token_merges(merges)
    w.add_bos_token_id(128000)
    w.add_eos_token_id(128001)
    w.add_add_bos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    ll = LlamaCppTok(path)
    stem = os.path.join(folder, "ggml-vocab-llama-bpe.gguf.")
    with open(stem + "inp", encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")
    with open(stem + "out", encoding="utf-8") as f:
        wants = f.read().split("\n")
    for t, want in zip(texts, wants):
        got = " ".join(str(i) for i in ll.encode(t.encode()))
        if got != want.strip():
            raise RuntimeError("%s: %r gives %s, llama.cpp's test case %s" % (path, t, got, want))
    ll.close()
    print("wrote %s: llama.cpp's %d test cases of ggml-vocab-llama-bpe give their ids"
          % (path, len(texts)))

# the texts (bytes): the round trip's hard cases
TEXTS = [
    b"", b" ", b"  ", b"   ", b"\t", b"\n", b"\n\n", b" \n", b"\n ",
    b"a", b" a", b"  a", b"   a", b"a ", b"a  ", b"a  b", b"a   b", b" a b ",
    b"Hello world", b" Hello world", b"Hello  world", b"Hello world ",
    b"\n a", b"a\n b", b"a \nb", b"\t a", b"a\tb",
    "\u2581".encode(), "\u2581a".encode(), "a\u2581b".encode(), " \u2581".encode(),
    "\u2581 ".encode(), "\u2581\u2581".encode(), "\u2581\u2581a".encode(),
    " \u2581a".encode(), "a \u2581 b".encode(),
    "caf\u00e9".encode(), " \u00e9t\u00e9".encode(), "\U0001F600".encode(),
    " \U0001F600 a".encode(), "\u4e2d\u6587".encode(),
    b"\x80", b"\xff", b"a\xbf\xbf b", b"\xe2\x96", b"x\xe2\x96 y\xe2", b"\xc0\xaf",
    b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b" \xfe\xff\n\xff\xff Hello",
    b"caf\xc3\xa9\xc3", b"\x00nul\x00", b"a\x00b",
    b"<s>", b"</s>", b"<unk>", b"<s>a", b" <s> </s> ", b"<0x41>", b"<0x0A>",
    b"<|begin_of_text|>", b"<|eot_id|> hi",
]


# texts llama.cpp (0.3.36) cannot tokenize with a byte-level BPE vocabulary:
# its pre-tokenizer throws "invalid codepoint" (and the process aborts) on a
# 4-byte sequence above U+10FFFF; lolcats spells it as four byte tokens
LLAMACPP_BPE_ABORTS = [b"\xf4\x90\x80\x80"]


class LolcatsTok:
    """lc_tokenizer_open / encode / decode through the shared library."""

    class Err(ctypes.Structure):
        _fields_ = [("code", ctypes.c_int), ("msg", ctypes.c_char * 1024)]

    def __init__(self, lib, path):
        self.lib = lib
        self.libc = ctypes.CDLL(None)
        err = self.Err()
        self.tok = ctypes.c_void_p()
        rc = lib.lc_tokenizer_open(ctypes.byref(self.tok), path.encode(), ctypes.byref(err))
        if rc != 0:
            raise RuntimeError(err.msg.decode(errors="replace"))
        self.bos = lib.lc_tokenizer_bos(self.tok)

    def encode(self, text, flags=0):
        ids = ctypes.POINTER(ctypes.c_int32)()
        n = ctypes.c_size_t()
        err = self.Err()
        rc = self.lib.lc_tokenizer_encode(self.tok, text, len(text), flags, ctypes.byref(ids),
                                          ctypes.byref(n), ctypes.byref(err))
        if rc != 0:
            raise RuntimeError(err.msg.decode(errors="replace"))
        out = [ids[i] for i in range(n.value)]
        self.libc.free(ids)
        return out

    def decode(self, ids):
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        text = ctypes.c_char_p()
        n = ctypes.c_size_t()
        err = self.Err()
        rc = self.lib.lc_tokenizer_decode(self.tok, arr, len(ids), ctypes.byref(text),
                                          ctypes.byref(n), ctypes.byref(err))
        if rc != 0:
            raise RuntimeError(err.msg.decode(errors="replace"))
        out = ctypes.string_at(text, n.value)
        self.libc.free(text)
        return out

    def close(self):
        self.lib.lc_tokenizer_close(self.tok)


def open_lib(path):
    lib = ctypes.CDLL(path)
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    lib.lc_tokenizer_open.argtypes = [ctypes.POINTER(vp), ctypes.c_char_p, vp]
    lib.lc_tokenizer_close.argtypes = [vp]
    lib.lc_tokenizer_bos.argtypes = [vp]
    lib.lc_tokenizer_bos.restype = ctypes.c_int32
    lib.lc_tokenizer_encode.argtypes = [vp, ctypes.c_char_p, sz, ctypes.c_uint, vp, vp, vp]
    lib.lc_tokenizer_decode.argtypes = [vp, vp, sz, vp, vp, vp]
    return lib


class LlamaCppTok:
    """llama.cpp's tokenizer of a GGUF file (vocabulary only)."""

    def __init__(self, path):
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not self.model:
            raise RuntimeError(path + ": llama.cpp cannot load it")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)

    def encode(self, text, add_special=False, parse_special=False):
        cap = len(text) + 8
        while True:
            buf = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self.vocab, text, len(text), buf, cap, add_special,
                                         parse_special)
            if n >= 0:
                return list(buf[:n])
            cap = -n

    def decode(self, ids, remove_special=True, unparse_special=False):
        arr = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
        cap = 16 * len(ids) + 16
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = llama_cpp.llama_detokenize(self.vocab, arr, len(ids), buf, cap, remove_special,
                                           unparse_special)
            if n >= 0:
                return buf.raw[:n]
            cap = -n

    def close(self):
        llama_cpp.llama_model_free(self.model)


def hf_tokenizer(folder):
    """transformers' tokenizer of the folder's tokenizer.model (its own
    conversion, as AutoTokenizer makes it), or None without transformers."""
    try:
        import transformers
    except ImportError:
        return None
    return transformers.AutoTokenizer.from_pretrained(folder)


def hf_ids_text(hf, text):
    """transformers' ids and decoded text (None for bytes that are not UTF-8:
    it takes str only)."""
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        return None, None
    ids = hf.encode(s, add_special_tokens=False, split_special_tokens=True)
    return ids, hf.decode(ids).encode()


def dump_ref(ref):
    """The reference as JSON, one case a line."""
    lines = ["{", '"generator": %s,' % json.dumps(ref["generator"]),
             '"llama_cpp_python": %s,' % json.dumps(ref["llama_cpp_python"]),
             '"vocabularies": {']
    names = list(ref["vocabularies"])
    for i, name in enumerate(names):
        v = ref["vocabularies"][name]
        lines.append('%s: {"gguf": %s, "lolcats": %s, "cases": ['
                     % (json.dumps(name), json.dumps(v["gguf"]), json.dumps(v["lolcats"])))
        for k, c in enumerate(v["cases"]):
            lines.append(" " + json.dumps(c, separators=(", ", ": "))
                         + ("," if k + 1 < len(v["cases"]) else ""))
        lines.append("]}" + ("," if i + 1 < len(names) else ""))
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap.add_argument("--lib", required=True, help="liblolcats.so")
    ap.add_argument("--data", default=os.path.join(repo, "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(repo, "data", "tokenizers",
                                                  "llamacpp_roundtrip.json"))
    ap.add_argument("--no-hf", action="store_true", help="leave transformers out")
    a = ap.parse_args()

    llama_cpp.llama_backend_init()
    lib = open_lib(a.lib)
    ref = {"generator": "data/gen/compare_llamacpp_tok.py",
           "llama_cpp_python": llama_cpp.__version__, "vocabularies": {}}
    differ = 0
    tmp = tempfile.TemporaryDirectory()
    for name, gguf_rel, lc_rel, hf_rel in VOCABS:
        if gguf_rel is None:
            gguf = os.path.join(tmp.name, name + ".gguf")
            llama3_gguf(os.path.join(a.data, lc_rel), gguf)
        else:
            gguf = os.path.join(a.data, gguf_rel)
        ll = LlamaCppTok(gguf)
        lc = LolcatsTok(lib, os.path.join(a.data, lc_rel) if lc_rel else gguf)
        hf = None if a.no_hf or hf_rel is None else hf_tokenizer(os.path.join(a.data, hf_rel))
        cases = []
        print("== %s (%s)%s" % (name, gguf_rel or lc_rel, "" if hf else ", without transformers"))
        for t in TEXTS:
            if lc_rel is not None and t in LLAMACPP_BPE_ABORTS:
                print("%-28r left out: llama.cpp aborts on it" % t)
                continue
            l_ids = ll.encode(t)
            l_txt = ll.decode(l_ids)
            l_bos = ll.encode(t, add_special=True)
            c_ids = lc.encode(t)
            c_txt = lc.decode(c_ids)
            c_bos = lc.encode(t, 1)
            h_ids, h_txt = hf_ids_text(hf, t) if hf else (None, None)
            cases.append({"text": t.hex(), "ids": l_ids, "ids_bos": l_bos,
                          "decoded": l_txt.hex()})
            notes = []
            if c_ids != l_ids:
                notes.append("ids: lolcats %s, llama.cpp %s" % (c_ids, l_ids))
            if c_bos != l_bos:
                notes.append("ids with BOS: lolcats %s, llama.cpp %s" % (c_bos, l_bos))
            if c_txt != l_txt:
                notes.append("decoded: lolcats %r, llama.cpp %r" % (c_txt, l_txt))
            if h_ids is not None and (h_ids != l_ids or h_txt != l_txt):
                notes.append("transformers: %s -> %r" % (h_ids, h_txt))
            rt = "round trip" if l_txt == t else "llama.cpp decodes %r" % l_txt
            print("%-28r %s%s" % (t, rt, "".join("\n    " + n for n in notes)))
            differ += c_ids != l_ids or c_txt != l_txt or c_bos != l_bos
        ref["vocabularies"][name] = {"gguf": gguf_rel or "written from " + lc_rel,
                                     "lolcats": lc_rel or gguf_rel, "cases": cases}
        lc.close()
        ll.close()
    with open(a.out, "w") as f:
        f.write(dump_ref(ref))
    print("%d cases where lolcats and llama.cpp differ; wrote %s" % (differ, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
