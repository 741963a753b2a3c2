# src/fcgi/local.mk - rules for src/fcgi (included by the top Makefile.am)
