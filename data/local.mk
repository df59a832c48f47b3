# data

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
