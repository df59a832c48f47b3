# data
EXTRA_DIST += data/gen/make_data_ref.py data/ref/data_stories260k.json
