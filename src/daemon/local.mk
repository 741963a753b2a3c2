# src/daemon/local.mk - crosstalkd: the daemon and its transports
bin_PROGRAMS += crosstalkd
crosstalkd_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(HIREDIS_CFLAGS) $(WSLAY_CFLAGS) $(CRYPTO_CFLAGS)
crosstalkd_SOURCES = src/daemon/main.c
crosstalkd_LDADD = $(COMMON_LIBS) $(LIBEVENT_LIBS) -levent_pthreads $(WSLAY_LIBS)
