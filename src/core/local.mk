# src/core/local.mk - the REST core: routing and the request/response calls,
# shared by crosstalkd and crosstalk-fcgi
noinst_LIBRARIES += libcore.a
libcore_a_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src/core
libcore_a_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS)
libcore_a_SOURCES = \
	src/core/route.c src/core/route.h \
	src/core/rest.c src/core/rest.h
