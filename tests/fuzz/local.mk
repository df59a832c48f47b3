# tests/fuzz: libFuzzer harnesses, one per reader of untrusted bytes.
#
# Each harness is built twice: with libFuzzer (CC=clang ./configure
# --enable-fuzzing; `make fuzz-smoke`, `make fuzz FUZZ_SECONDS=...`) and,
# in every build, with a plain driver that `make check` runs on the seed
# corpora and the regression inputs (tests/fuzz/regress: every input a
# fuzzer ever failed on).

LC_FUZZ_NAMES = safetensors st_index gguf config_json tok_spm tok_json tok_gpt2 tok_gguf tok_roundtrip data eval lolcats_dir train_state
LC_FUZZ_COMMON = tests/fuzz/fuzz_common.c tests/fuzz/fuzz_common.h
LC_FUZZ_TOK = tests/fuzz/fuzz_tok.c tests/fuzz/fuzz_tok.h
LC_FUZZ_CPPFLAGS = $(AM_CPPFLAGS) -DLC_FUZZ_SRCDIR='"$(abs_top_srcdir)"' \
	-DLC_FUZZ_TEST_DATA='"$(LC_TEST_DATA)"'
LC_FUZZ_LDADD = liblc_internal.la $(LC_DEP_LIBS)
# built for make check, run by replay.sh (not as tests of their own)
LC_FUZZ_REPLAY =
EXTRA_PROGRAMS = $(LC_FUZZ_REPLAY)
check_DATA += $(LC_FUZZ_REPLAY)
CLEANFILES += $(LC_FUZZ_REPLAY)
LC_FUZZ_REPLAY += tests/fuzz/replay_safetensors
tests_fuzz_replay_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c $(LC_FUZZ_COMMON) tests/fuzz/fuzz_main.c
tests_fuzz_replay_safetensors_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_safetensors_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_st_index
tests_fuzz_replay_st_index_SOURCES = tests/fuzz/fuzz_st_index.c $(LC_FUZZ_COMMON) tests/fuzz/fuzz_main.c
tests_fuzz_replay_st_index_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_st_index_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_gguf
tests_fuzz_replay_gguf_SOURCES = tests/fuzz/fuzz_gguf.c $(LC_FUZZ_COMMON) tests/fuzz/fuzz_main.c
tests_fuzz_replay_gguf_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_gguf_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_config_json
tests_fuzz_replay_config_json_SOURCES = tests/fuzz/fuzz_config_json.c $(LC_FUZZ_COMMON) tests/fuzz/fuzz_main.c
tests_fuzz_replay_config_json_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_config_json_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_tok_spm
tests_fuzz_replay_tok_spm_SOURCES = tests/fuzz/fuzz_tok_spm.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK) tests/fuzz/fuzz_main.c
tests_fuzz_replay_tok_spm_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_tok_spm_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_tok_json
tests_fuzz_replay_tok_json_SOURCES = tests/fuzz/fuzz_tok_json.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK) tests/fuzz/fuzz_main.c
tests_fuzz_replay_tok_json_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_tok_json_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_tok_gpt2
tests_fuzz_replay_tok_gpt2_SOURCES = tests/fuzz/fuzz_tok_gpt2.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK) tests/fuzz/fuzz_main.c
tests_fuzz_replay_tok_gpt2_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_tok_gpt2_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_tok_gguf
tests_fuzz_replay_tok_gguf_SOURCES = tests/fuzz/fuzz_tok_gguf.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK) tests/fuzz/fuzz_main.c
tests_fuzz_replay_tok_gguf_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_tok_gguf_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_tok_roundtrip
tests_fuzz_replay_tok_roundtrip_SOURCES = tests/fuzz/fuzz_tok_roundtrip.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK) tests/fuzz/fuzz_main.c
tests_fuzz_replay_tok_roundtrip_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_tok_roundtrip_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_data
tests_fuzz_replay_data_SOURCES = tests/fuzz/fuzz_data.c $(LC_FUZZ_COMMON) tests/fuzz/fuzz_main.c
tests_fuzz_replay_data_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_data_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_eval
tests_fuzz_replay_eval_SOURCES = tests/fuzz/fuzz_eval.c $(LC_FUZZ_COMMON) tests/fuzz/fuzz_main.c
tests_fuzz_replay_eval_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_eval_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_lolcats_dir
tests_fuzz_replay_lolcats_dir_SOURCES = tests/fuzz/fuzz_lolcats_dir.c $(LC_FUZZ_COMMON) tests/fuzz/fuzz_main.c
tests_fuzz_replay_lolcats_dir_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_lolcats_dir_LDADD = $(LC_FUZZ_LDADD)
LC_FUZZ_REPLAY += tests/fuzz/replay_train_state
tests_fuzz_replay_train_state_SOURCES = tests/fuzz/fuzz_train_state.c $(LC_FUZZ_COMMON) tests/fuzz/fuzz_main.c
tests_fuzz_replay_train_state_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_replay_train_state_LDADD = $(LC_FUZZ_LDADD)
if COND_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_safetensors
tests_fuzz_fuzz_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c $(LC_FUZZ_COMMON)
tests_fuzz_fuzz_safetensors_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_safetensors_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_safetensors_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_st_index
tests_fuzz_fuzz_st_index_SOURCES = tests/fuzz/fuzz_st_index.c $(LC_FUZZ_COMMON)
tests_fuzz_fuzz_st_index_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_st_index_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_st_index_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_gguf
tests_fuzz_fuzz_gguf_SOURCES = tests/fuzz/fuzz_gguf.c $(LC_FUZZ_COMMON)
tests_fuzz_fuzz_gguf_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_gguf_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_gguf_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_config_json
tests_fuzz_fuzz_config_json_SOURCES = tests/fuzz/fuzz_config_json.c $(LC_FUZZ_COMMON)
tests_fuzz_fuzz_config_json_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_config_json_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_config_json_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_tok_spm
tests_fuzz_fuzz_tok_spm_SOURCES = tests/fuzz/fuzz_tok_spm.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK)
tests_fuzz_fuzz_tok_spm_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_tok_spm_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_tok_spm_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_tok_json
tests_fuzz_fuzz_tok_json_SOURCES = tests/fuzz/fuzz_tok_json.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK)
tests_fuzz_fuzz_tok_json_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_tok_json_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_tok_json_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_tok_gpt2
tests_fuzz_fuzz_tok_gpt2_SOURCES = tests/fuzz/fuzz_tok_gpt2.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK)
tests_fuzz_fuzz_tok_gpt2_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_tok_gpt2_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_tok_gpt2_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_tok_gguf
tests_fuzz_fuzz_tok_gguf_SOURCES = tests/fuzz/fuzz_tok_gguf.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK)
tests_fuzz_fuzz_tok_gguf_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_tok_gguf_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_tok_gguf_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_tok_roundtrip
tests_fuzz_fuzz_tok_roundtrip_SOURCES = tests/fuzz/fuzz_tok_roundtrip.c $(LC_FUZZ_COMMON) $(LC_FUZZ_TOK)
tests_fuzz_fuzz_tok_roundtrip_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_tok_roundtrip_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_tok_roundtrip_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_data
tests_fuzz_fuzz_data_SOURCES = tests/fuzz/fuzz_data.c $(LC_FUZZ_COMMON)
tests_fuzz_fuzz_data_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_data_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_data_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_eval
tests_fuzz_fuzz_eval_SOURCES = tests/fuzz/fuzz_eval.c $(LC_FUZZ_COMMON)
tests_fuzz_fuzz_eval_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_eval_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_eval_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_lolcats_dir
tests_fuzz_fuzz_lolcats_dir_SOURCES = tests/fuzz/fuzz_lolcats_dir.c $(LC_FUZZ_COMMON)
tests_fuzz_fuzz_lolcats_dir_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_lolcats_dir_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_lolcats_dir_LDADD = $(LC_FUZZ_LDADD)
noinst_PROGRAMS += tests/fuzz/fuzz_train_state
tests_fuzz_fuzz_train_state_SOURCES = tests/fuzz/fuzz_train_state.c $(LC_FUZZ_COMMON)
tests_fuzz_fuzz_train_state_CPPFLAGS = $(LC_FUZZ_CPPFLAGS)
tests_fuzz_fuzz_train_state_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_train_state_LDADD = $(LC_FUZZ_LDADD)
endif


LC_FUZZ_SH = tests/fuzz/replay.sh
TESTS += $(LC_FUZZ_SH)
EXTRA_DIST += $(LC_FUZZ_SH) tests/fuzz/run.sh tests/fuzz/make-seeds.sh tests/fuzz/README.md \
	tests/fuzz/json.dict tests/fuzz/gguf.dict tests/fuzz/safetensors.dict tests/fuzz/tok.dict \
	tests/fuzz/seeds tests/fuzz/regress

# Seconds per harness: fuzz-smoke is the bounded run of CI; `make fuzz`
# the long one (FUZZ_RUNS, when set, stops each harness after that many
# executions instead).
FUZZ_SMOKE_SECONDS = 10
FUZZ_SECONDS = 600
FUZZ_RUNS =
FUZZ_NAMES = $(LC_FUZZ_NAMES)

LC_FUZZ_RUN = LC_TEST_DATA='$(LC_TEST_DATA)' LC_DATA_DIR='$(abs_top_srcdir)/data' \
	OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1 \
	$(SHELL) $(srcdir)/tests/fuzz/run.sh '$(srcdir)' '$(abs_top_builddir)'

if COND_FUZZING
fuzz-smoke: all
	@for h in $(FUZZ_NAMES); do \
	  $(LC_FUZZ_RUN) $$h $(FUZZ_SMOKE_SECONDS) '' || exit 1; done
fuzz: all
	@for h in $(FUZZ_NAMES); do \
	  $(LC_FUZZ_RUN) $$h $(FUZZ_SECONDS) '$(FUZZ_RUNS)' || exit 1; done
else
fuzz-smoke fuzz:
	@echo "the fuzz harnesses need a fuzzing build: CC=clang ./configure --enable-fuzzing" >&2; exit 1
endif
.PHONY: fuzz-smoke fuzz

clean-local: clean-fuzz
clean-fuzz:
	rm -rf tests/fuzz/corpus tests/fuzz/artifacts tests/fuzz/logs
.PHONY: clean-fuzz
