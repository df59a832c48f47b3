# src/cli: the programs.  They use the public interface only and link the
# shared library.
noinst_LTLIBRARIES += libcli.la
libcli_la_SOURCES = src/cli/cli.c src/cli/cli.h

bin_PROGRAMS += src/cli/lolcats-train src/cli/lolcats-eval src/cli/lolcats-generate
src_cli_lolcats_train_SOURCES = src/cli/lolcats-train.c
src_cli_lolcats_train_LDADD = libcli.la liblolcats.la -lm
src_cli_lolcats_eval_SOURCES = src/cli/lolcats-eval.c
src_cli_lolcats_eval_LDADD = libcli.la liblolcats.la -lm
src_cli_lolcats_generate_SOURCES = src/cli/lolcats-generate.c
src_cli_lolcats_generate_LDADD = libcli.la liblolcats.la -lm
