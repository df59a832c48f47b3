# data: reference outputs generated with Python (scripts in data/gen/, see data/ref/README.md).
# data/gen/refcommon.py: what the generators share.
EXTRA_DIST += data/gen/refcommon.py
EXTRA_DIST += data/gen/make_logits_ref.py
EXTRA_DIST += data/ref/logits_stories260K.safetensors
EXTRA_DIST += data/ref/logits_tiny_random.safetensors
EXTRA_DIST += data/gen/make_ppl_ref.py
EXTRA_DIST += data/ref/ppl_reference.json
EXTRA_DIST += data/ref/README.md
# Llama 3.1 RoPE scaling: a tiny model as a Hugging Face folder and as a
# GGUF file (rope_freqs), and its transformers logits
EXTRA_DIST += data/gen/make_llama31_ref.py data/ref/logits_tiny_llama31.safetensors \
	data/ref/tiny-llama31-hf/config.json data/ref/tiny-llama31-hf/model.safetensors \
	data/ref/tiny-llama31.gguf

# tokenizers: small tokenizer.json files and the Hugging Face library's ids
# (data/gen/make_tokenizers.py)
EXTRA_DIST += \
	data/gen/make_tokenizers.py \
	data/tokenizers/bbpe-small/tokenizer.json \
	data/tokenizers/expected_ids.json \
	data/tokenizers/tok512-first.json \
	data/tokenizers/tok512-hf/tokenizer.json \
	data/tokenizers/tok512-hf/tokenizer_config.json \
	data/tokenizers/tok512-legacy.json

# llama.cpp's ids and decoded texts of the round trip's hard cases for the
# GGUF vocabularies of the shared test data (data/gen/compare_llamacpp_tok.py)
EXTRA_DIST += data/gen/compare_llamacpp_tok.py data/tokenizers/llamacpp_roundtrip.json

# data pipeline: token streams of the shared text files for the stories260K
# tokenizer (data/gen/make_data_ref.py)
EXTRA_DIST += data/gen/make_data_ref.py data/ref/data_stories260k.json

# hybrid attention: golden outputs of an independent PyTorch implementation
# (data/gen/make_hybrid_golden.py)
EXTRA_DIST += data/gen/make_hybrid_golden.py data/ref/hybrid_golden.safetensors

# multiple-choice tasks: per-choice log-likelihoods of stories260K from
# transformers + SentencePiece (data/gen/make_eval_ref.py)
EXTRA_DIST += data/gen/make_eval_ref.py data/ref/eval_reference.json

# stage 2: golden loss and gradients of LoRA on the linearized stories260K
# (data/gen/make_lora_golden.py), and the PEFT compatibility check with its
# recorded output (data/gen/check_peft_adapter.py)
EXTRA_DIST += data/gen/make_lora_golden.py data/ref/lora_golden.safetensors
EXTRA_DIST += data/gen/check_peft_adapter.py data/ref/peft_check.txt

# the shapes of Llama 3.1 8B, 70B and 405B (public configuration files)
# for the memory planner's tests; a model of a shape with random weights
# (bench/dist_70b.sh)
EXTRA_DIST += data/configs/llama-3.1-8b.json data/configs/llama-3.1-70b.json \
	data/configs/llama-3.1-405b.json data/gen/make_random_model.py

# The main job's model and text (data/README.md), installed under
# $(pkgdatadir) with the same names, with their licences: the README's
# first command, the program tests and the autopkgtest use them
stories260Kdir = $(pkgdatadir)/models/stories260K-hf
dist_stories260K_DATA = \
	data/models/stories260K-hf/config.json \
	data/models/stories260K-hf/generation_config.json \
	data/models/stories260K-hf/model.safetensors \
	data/models/stories260K-hf/tokenizer.model \
	data/models/stories260K-hf/tokenizer_config.json
tinystoriesdir = $(pkgdatadir)/text/tinystories
dist_tinystories_DATA = data/text/tinystories/tinystories_val.txt
dist_pkgdata_DATA = data/LICENSE.stories260K data/LICENSE.CDLA-Sharing-1.0
EXTRA_DIST += data/README.md

# the lora-only stage (LoRA on the original model) against PyTorch + PEFT
# trained from the same start on the same batches, with its recorded output
# (data/gen/peft_lora_only.py)
EXTRA_DIST += data/gen/peft_lora_only.py data/ref/peft_lora_only.txt
