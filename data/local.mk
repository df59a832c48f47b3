# data: reference outputs generated with Python (scripts in data/gen/, see data/ref/README.md).
EXTRA_DIST += data/gen/make_logits_ref.py
EXTRA_DIST += data/ref/logits_stories260K.safetensors
EXTRA_DIST += data/ref/logits_tiny_random.safetensors
EXTRA_DIST += data/gen/make_ppl_ref.py
EXTRA_DIST += data/ref/ppl_reference.json
EXTRA_DIST += data/ref/README.md
EXTRA_DIST += data/gen/make_hybrid_golden.py
EXTRA_DIST += data/ref/hybrid_golden.safetensors
