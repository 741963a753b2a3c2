# src/fcgi/local.mk - crosstalk-fcgi: the FastCGI responder pool's program
bin_PROGRAMS += crosstalk-fcgi
# -iquote: our "config.h" is src/common's, not autoconf's at the top, which
# -I. (automake's DEFAULT_INCLUDES) would otherwise find first.
crosstalk_fcgi_CPPFLAGS = -iquote $(top_srcdir)/src/common $(AM_CPPFLAGS)
crosstalk_fcgi_CFLAGS = $(AM_CFLAGS) $(FCGI_CFLAGS) $(HIREDIS_CFLAGS)
crosstalk_fcgi_SOURCES = \
	src/fcgi/main.c \
	src/fcgi/rest.c src/fcgi/rest.h \
	src/fcgi/store.c src/fcgi/store.h \
	src/fcgi/archive.c src/fcgi/archive.h
crosstalk_fcgi_LDADD = $(COMMON_LIBS) $(FCGI_LIBS)
