# src/bench/local.mk - crosstalk-bench: the load and latency client
bin_PROGRAMS += crosstalk-bench
crosstalk_bench_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(CRYPTO_CFLAGS)
crosstalk_bench_SOURCES = \
	src/bench/main.c src/bench/bench.h \
	src/bench/run.c src/bench/run.h \
	src/bench/sub.c src/bench/sub.h \
	src/bench/pub.c src/bench/pub.h \
	src/bench/conn.c src/bench/conn.h \
	src/bench/hist.c src/bench/hist.h \
	src/bench/report.c src/bench/report.h
crosstalk_bench_LDADD = $(COMMON_LIBS) $(LIBEVENT_LIBS) -lm

# The floor crosstalkd and nchan are measured against (scripts/bench/run):
# built with everything, installed nowhere.
noinst_PROGRAMS += crosstalk-floor
crosstalk_floor_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src/transport
crosstalk_floor_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS)
crosstalk_floor_SOURCES = src/bench/floor.c
crosstalk_floor_LDADD = libwscore.a $(COMMON_LIBS) $(WSLAY_LIBS)
