# src/fcgi/local.mk - crosstalk-fcgi: the FastCGI responder pool's program
bin_PROGRAMS += crosstalk-fcgi
crosstalk_fcgi_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src/core $(ARCHIVE_CPPFLAGS)
crosstalk_fcgi_CFLAGS = $(AM_CFLAGS) $(FCGI_CFLAGS) $(HIREDIS_CFLAGS) -pthread
crosstalk_fcgi_LDFLAGS = -pthread
crosstalk_fcgi_SOURCES = \
	src/fcgi/main.c \
	src/fcgi/serve.c src/fcgi/serve.h \
	src/fcgi/archive.c src/fcgi/archive.h src/fcgi/archive_mongo.c
# the archive read path of src/backup (MongoDB), for ?before= pages
crosstalk_fcgi_LDADD = libcore.a $(ARCHIVE_LIBS) $(COMMON_LIBS) $(FCGI_LIBS)
