"""What the reference generators in data/gen share: their command line, the
library versions recorded in the reference files, a safetensors writer that
gives the same bytes on every run, the loaders of the model and of the
SentencePiece tokenizer, and the attention student's pieces (Hedgehog
feature maps, the window masks)."""

import argparse
import json
import os

import gguf
import numpy as np
import safetensors
import sentencepiece
import torch
import transformers
from safetensors import safe_open
from transformers import LlamaForCausalLM


def parse_ref_args(doc, script):
    """--data (the shared test data folder) and --out (default data/ref
    beside the script; created)."""
    here = os.path.dirname(os.path.abspath(script))
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--data", default=os.path.normpath(os.path.join(here, "..", "..", "..",
                                                                    "shared", "data")),
                    help="shared test data folder (the configure --with-test-data one; "
                         "default: ../shared/data beside the repository)")
    ap.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "ref")))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    return args


def versions():
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "sentencepiece": sentencepiece.__version__,
        "safetensors": safetensors.__version__,
        "gguf": getattr(gguf, "__version__", "") or _dist_version("gguf"),
    }


def _dist_version(pkg):
    from importlib.metadata import version
    return version(pkg)


def save_file(tensors, path, metadata):
    """Write a safetensors file with a deterministic header (sorted keys,
    padded with spaces to a multiple of 8) so that reruns give identical
    bytes; safetensors.numpy.save_file orders __metadata__ at random."""
    header = {"__metadata__": dict(sorted(metadata.items()))}
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
              np.dtype(np.int32): "I32"}
    off = 0
    blobs = []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
    # Read it back with the safetensors library.
    with safe_open(path, "np") as f:
        assert f.metadata() == metadata
        for name in tensors:
            assert np.array_equal(f.get_tensor(name), tensors[name]), name


def load_hf(path, **kw):
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32,
                                             attn_implementation="eager", **kw)
    model.eval()
    return model


def load_spm_without_whitespace_removal(path):
    """The SentencePiece model with remove_extra_whitespaces off."""
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2
    proto = spm_pb2.ModelProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    proto.normalizer_spec.remove_extra_whitespaces = False
    return sentencepiece.SentencePieceProcessor(model_proto=proto.SerializeToString())


def hedgehog(x, w, n_heads, eps):
    """Hedgehog feature maps: x [B, T, Hx, D], w [H, D, f] -> [B, T, H, 2f]"""
    rep = n_heads // x.shape[2]
    xh = x.repeat_interleave(rep, dim=2)  # head h reads x head h // rep
    z = torch.einsum("bthd,hdf->bthf", xh, w)
    phi = torch.cat([torch.softmax(z, dim=-1), torch.softmax(-z, dim=-1)], dim=-1)
    return phi.clamp_min(eps)


def masks(n, mode, window):
    """[n, n] masks (query i, key j): causal, the softmax window (terraced or
    sliding, of `window` tokens) and the linear part (causal outside it)."""
    i = torch.arange(n).view(n, 1)
    j = torch.arange(n).view(1, n)
    causal = j <= i
    if mode == "terraced":
        win = causal & (j // window >= i // window - 1)
    else:
        win = causal & (i - j < window)
    return causal, win, causal & ~win
