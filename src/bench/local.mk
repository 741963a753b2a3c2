# src/bench/local.mk - rules for src/bench (included by the top Makefile.am)
