# src/daemon/local.mk - crosstalkd: the daemon and its transports
bin_PROGRAMS += crosstalkd
crosstalkd_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src/core -I$(top_srcdir)/src/daemon -I$(top_srcdir)/src/transport
crosstalkd_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(HIREDIS_CFLAGS) $(WSLAY_CFLAGS) $(CRYPTO_CFLAGS)
crosstalkd_SOURCES = \
	src/daemon/main.c src/daemon/app.h \
	src/daemon/http.c src/daemon/http.h \
	src/daemon/serve.c src/daemon/serve.h \
	src/daemon/bus.c src/daemon/bus.h \
	src/daemon/window.c src/daemon/window.h \
	src/daemon/redis.c src/daemon/redis.h \
	src/daemon/feed.c src/daemon/feed.h \
	src/daemon/flush.c src/daemon/flush.h \
	src/daemon/resume.c src/daemon/resume.h \
	src/daemon/presence.c src/daemon/presence.h \
	src/daemon/session.c src/daemon/session.h \
	src/daemon/stats.c src/daemon/stats.h \
	src/transport/transport.h \
	src/transport/long_poll.c \
	src/transport/sse.c src/transport/sse.h \
	src/transport/websocket.c src/transport/websocket.h
crosstalkd_LDADD = libcore.a libwscore.a $(COMMON_LIBS) $(LIBEVENT_LIBS) $(WSLAY_LIBS)

# The WebSocket protocol without its socket: crosstalkd, its unit test and
# the fuzzer (tests/fuzz/build.sh) link the same code.
noinst_LIBRARIES += libwscore.a
libwscore_a_CFLAGS = $(AM_CFLAGS) $(WSLAY_CFLAGS) $(CRYPTO_CFLAGS)
libwscore_a_SOURCES = \
	src/transport/wscore.c src/transport/wscore.h \
	src/transport/wsframe.c src/transport/wsframe.h
