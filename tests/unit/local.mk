# tests/unit/local.mk - C unit tests (TAP), run by make check
LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh

UNIT_TESTS = \
	tests/unit/test_names tests/unit/test_utf8 tests/unit/test_streamid \
	tests/unit/test_event tests/unit/test_api tests/unit/test_query \
	tests/unit/test_config tests/unit/test_auth tests/unit/test_keys \
	tests/unit/test_reply tests/unit/test_scripts tests/unit/test_log \
	tests/unit/test_statrec tests/unit/test_store
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
EXTRA_DIST += tests/unit/tap.h tests/unit/redisd.h

tests_unit_test_names_SOURCES = tests/unit/test_names.c tests/unit/tap.h
tests_unit_test_names_LDADD = $(COMMON_LIBS)
tests_unit_test_utf8_SOURCES = tests/unit/test_utf8.c tests/unit/tap.h
tests_unit_test_utf8_LDADD = $(COMMON_LIBS)
tests_unit_test_streamid_SOURCES = tests/unit/test_streamid.c tests/unit/tap.h
tests_unit_test_streamid_LDADD = $(COMMON_LIBS)
tests_unit_test_event_SOURCES = tests/unit/test_event.c tests/unit/tap.h
tests_unit_test_event_LDADD = $(COMMON_LIBS)
tests_unit_test_api_SOURCES = tests/unit/test_api.c tests/unit/tap.h
tests_unit_test_api_LDADD = $(COMMON_LIBS)
tests_unit_test_query_SOURCES = tests/unit/test_query.c tests/unit/tap.h
tests_unit_test_query_LDADD = $(COMMON_LIBS)
tests_unit_test_config_SOURCES = tests/unit/test_config.c tests/unit/tap.h
tests_unit_test_config_LDADD = $(COMMON_LIBS)
tests_unit_test_auth_SOURCES = tests/unit/test_auth.c tests/unit/tap.h
tests_unit_test_auth_LDADD = $(COMMON_LIBS)
tests_unit_test_keys_SOURCES = tests/unit/test_keys.c tests/unit/tap.h
tests_unit_test_keys_LDADD = $(COMMON_LIBS)
tests_unit_test_reply_SOURCES = tests/unit/test_reply.c tests/unit/tap.h
tests_unit_test_reply_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS)
tests_unit_test_reply_LDADD = $(COMMON_LIBS)
tests_unit_test_scripts_SOURCES = tests/unit/test_scripts.c tests/unit/tap.h \
	tests/unit/redisd.h
tests_unit_test_scripts_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS)
tests_unit_test_scripts_LDADD = $(COMMON_LIBS)
tests_unit_test_store_SOURCES = tests/unit/test_store.c tests/unit/tap.h \
	tests/unit/redisd.h
tests_unit_test_store_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS)
tests_unit_test_store_LDADD = $(COMMON_LIBS)
tests_unit_test_log_SOURCES = tests/unit/test_log.c tests/unit/tap.h
tests_unit_test_log_LDADD = $(COMMON_LIBS)

# Modules of the daemon that stand alone are tested here too.
check_PROGRAMS += tests/unit/test_ratelimit tests/unit/test_bus
TESTS += tests/unit/test_ratelimit tests/unit/test_bus
tests_unit_test_ratelimit_SOURCES = tests/unit/test_ratelimit.c tests/unit/tap.h
tests_unit_test_ratelimit_LDADD = $(COMMON_LIBS)
tests_unit_test_bus_SOURCES = tests/unit/test_bus.c tests/unit/tap.h \
	src/daemon/bus.c src/daemon/bus.h src/daemon/stats.h \
	src/daemon/window.c src/daemon/window.h
tests_unit_test_bus_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src/daemon
tests_unit_test_bus_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
tests_unit_test_bus_LDADD = $(COMMON_LIBS) $(LIBEVENT_LIBS)
check_PROGRAMS += tests/unit/test_redisurl
TESTS += tests/unit/test_redisurl
tests_unit_test_redisurl_SOURCES = tests/unit/test_redisurl.c tests/unit/tap.h
tests_unit_test_redisurl_LDADD = $(COMMON_LIBS)
tests_unit_test_statrec_SOURCES = tests/unit/test_statrec.c tests/unit/tap.h
tests_unit_test_statrec_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
tests_unit_test_statrec_LDADD = $(COMMON_LIBS)
check_PROGRAMS += tests/unit/test_strlist
TESTS += tests/unit/test_strlist
tests_unit_test_strlist_SOURCES = tests/unit/test_strlist.c tests/unit/tap.h
tests_unit_test_strlist_LDADD = $(COMMON_LIBS)
check_PROGRAMS += tests/unit/test_tally
TESTS += tests/unit/test_tally
tests_unit_test_tally_SOURCES = tests/unit/test_tally.c tests/unit/tap.h
tests_unit_test_tally_LDADD = $(COMMON_LIBS)
check_PROGRAMS += tests/unit/test_wscore
TESTS += tests/unit/test_wscore
tests_unit_test_wscore_SOURCES = tests/unit/test_wscore.c tests/unit/tap.h
tests_unit_test_wscore_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src/transport
tests_unit_test_wscore_LDADD = libwscore.a $(COMMON_LIBS) $(WSLAY_LIBS)
check_PROGRAMS += tests/unit/test_shard
TESTS += tests/unit/test_shard
tests_unit_test_shard_SOURCES = tests/unit/test_shard.c tests/unit/tap.h
tests_unit_test_shard_LDADD = $(COMMON_LIBS)

# The bus's window of recent messages, at its edges.
check_PROGRAMS += tests/unit/test_window
TESTS += tests/unit/test_window
tests_unit_test_window_SOURCES = tests/unit/test_window.c tests/unit/tap.h \
	src/daemon/bus.c src/daemon/bus.h src/daemon/stats.h \
	src/daemon/window.c src/daemon/window.h
tests_unit_test_window_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src/daemon
tests_unit_test_window_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
tests_unit_test_window_LDADD = $(COMMON_LIBS) $(LIBEVENT_LIBS)
