# src/common/local.mk - the library every program and unit test links
noinst_LIBRARIES += libcrosstalk.a
libcrosstalk_a_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS) $(HIREDIS_CFLAGS) $(CRYPTO_CFLAGS)
libcrosstalk_a_SOURCES = \
	src/common/xmalloc.c src/common/xmalloc.h \
	src/common/log.c src/common/log.h \
	src/common/config.c src/common/config.h \
	src/common/names.c src/common/names.h \
	src/common/utf8.c src/common/utf8.h \
	src/common/streamid.c src/common/streamid.h \
	src/common/event.c src/common/event.h src/common/jsonobj.h \
	src/common/api.c src/common/api.h \
	src/common/auth.c src/common/auth.h \
	src/common/keys.c src/common/keys.h \
	src/common/reply.c src/common/reply.h \
	src/common/query.c src/common/query.h \
	src/common/ratelimit.c src/common/ratelimit.h \
	src/common/tally.c src/common/tally.h \
	src/common/redisurl.c src/common/redisurl.h \
	src/common/statrec.c src/common/statrec.h \
	src/common/strlist.c src/common/strlist.h \
	src/common/shard.c src/common/shard.h \
	src/common/rexec.h \
	src/common/rexec_sync.c src/common/rexec_sync.h \
	src/common/store.c src/common/store.h \
	src/common/transport_kind.h
# What a program linking libcrosstalk.a needs besides.
COMMON_LIBS = libcrosstalk.a $(JSONC_LIBS) $(HIREDIS_LIBS) $(CRYPTO_LIBS)
