# src/backup/local.mk - rules for src/backup (included by the top Makefile.am)
