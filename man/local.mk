# man: hand-written roff pages, linted by tests/cli_manpages.sh
dist_man_MANS += \
	man/lolcats-train.1 \
	man/lolcats-eval.1 \
	man/lolcats-generate.1 \
	man/lolcats-checkpoint.5 \
	man/lolcats.7
