#!/usr/bin/env python3
"""Tokenizer round trips of lolcats beside llama.cpp's (and transformers').

For each GGUF vocabulary of the shared test data (llama.cpp loads it with
vocab_only=True), encodes the tricky texts of the round-trip promise
(lolcats.h, lc_tokenizer_decode; lolcats(7)): literal U+2581, runs of
spaces, leading and trailing spaces, newlines and tabs, invalid UTF-8,
NUL bytes, special-token spellings; then decodes the ids.  lolcats is
called through its shared library (ctypes) on the same GGUF file.  When
transformers is installed, the Hugging Face tokenizer of the same
vocabulary (the folder's tokenizer.model as AutoTokenizer converts it)
joins in: it takes text only, so not the invalid UTF-8.

What it showed (llama-cpp-python 0.3.36, transformers 5.25): lolcats and
llama.cpp give the same ids, with and without BOS, and the same decoded
text for every valid UTF-8 text; transformers agrees with both on the
Llama 2 vocabulary, and on tok512 drops one leading space and a leading
U+2581 (its conversion of tokenizer.model prepends U+2581 only to a text
that does not start with one).  On invalid UTF-8 llama.cpp takes as many
bytes as a lead byte announces, so "\xff" swallows the U+2581 of a
following space, which its decode gives back as those three bytes: a
changed text, where lolcats keeps the text.

Prints, per text, where the three differ (ids without and with BOS, the
decoded text of the ids without BOS), and writes
data/tokenizers/llamacpp_roundtrip.json: for every vocabulary and text
(hex), llama.cpp's ids without and with BOS and its decoded text (hex),
which tests/test_tokenizer.c checks lolcats against (make check needs no
Python).

Needs: llama-cpp-python (built from source: pip install llama-cpp-python),
optionally transformers + sentencepiece + protobuf.

Run:  python3 data/gen/compare_llamacpp_tok.py --lib BUILD/.libs/liblolcats.so
          [--data ../shared/data] [--out data/tokenizers/llamacpp_roundtrip.json]
"""

import argparse
import ctypes
import json
import os
import sys

import llama_cpp

# name, GGUF file (in the shared data), a folder with the same vocabulary
# as tokenizer.model for transformers
VOCABS = [
    ("llama2-spm", "tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf", "tokenizers/llama2-spm"),
    ("tok512", "models/stories260K/stories260K.gguf", "models/stories260K-hf"),
]

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
]


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
        lines.append('%s: {"gguf": %s, "cases": [' % (json.dumps(name), json.dumps(v["gguf"])))
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
    for name, gguf_rel, hf_rel in VOCABS:
        gguf = os.path.join(a.data, gguf_rel)
        ll = LlamaCppTok(gguf)
        lc = LolcatsTok(lib, gguf)
        hf = None if a.no_hf else hf_tokenizer(os.path.join(a.data, hf_rel))
        cases = []
        print("== %s (%s)%s" % (name, gguf_rel, "" if hf else ", without transformers"))
        for t in TEXTS:
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
        ref["vocabularies"][name] = {"gguf": gguf_rel, "cases": cases}
        lc.close()
        ll.close()
    with open(a.out, "w") as f:
        f.write(dump_ref(ref))
    print("%d cases where lolcats and llama.cpp differ; wrote %s" % (differ, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
