# src/backup/local.mk - rules for src/backup (included by the top Makefile.am)

# The MongoDB archive: written by crosstalk-backup, read by the FastCGI
# responder for ?before= pages older than Redis holds. A program using it
# adds $(ARCHIVE_CPPFLAGS) to its CPPFLAGS (then #include "mongo_archive.h")
# and $(ARCHIVE_LIBS) before $(COMMON_LIBS) to its LDADD.
noinst_LIBRARIES += libarchive.a
libarchive_a_CFLAGS = $(AM_CFLAGS) $(MONGOC_CFLAGS)
libarchive_a_SOURCES = src/backup/mongo_archive.c src/backup/mongo_archive.h
ARCHIVE_CPPFLAGS = -I$(top_srcdir)/src/backup
ARCHIVE_LIBS = libarchive.a $(MONGOC_LIBS)

bin_PROGRAMS += crosstalk-backup
crosstalk_backup_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS)
crosstalk_backup_SOURCES = \
	src/backup/main.c \
	src/backup/backup.c src/backup/backup.h \
	src/backup/lock.c src/backup/lock.h \
	src/backup/migrate.c src/backup/reshard.c src/backup/reshard.h \
	src/backup/reshard_servers.c src/backup/reshard_servers.h
crosstalk_backup_LDADD = $(ARCHIVE_LIBS) $(COMMON_LIBS)

# Reads the archive for the tests: dumps it, pages it back.
noinst_PROGRAMS += ct-archive-tool
ct_archive_tool_SOURCES = src/backup/archive_tool.c
ct_archive_tool_LDADD = $(ARCHIVE_LIBS) $(COMMON_LIBS)

# Prints (building once) the FerretDB the backup tests run against.
dist_noinst_SCRIPTS += scripts/ferretdb
