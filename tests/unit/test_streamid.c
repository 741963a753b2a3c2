/* test_streamid.c - parsing, comparing and formatting stream ids */
#include <string.h>

#include "streamid.h"
#include "tap.h"

static int parse(const char *s, struct streamid *id)
{
    return streamid_parse(s, strlen(s), id);
}

/* The verdict on a resume after `since`, its signal in *sig. */
static int judge(const char *since, const struct streamid_log *log,
                 struct streamid_signal *sig)
{
    struct streamid id;

    parse(since, &id);
    streamid_judge(&id, log, sig);
    return sig->verdict;
}

int main(void)
{
    struct streamid a, b;
    char buf[STREAMID_STRLEN];

    is_int(parse("1732230000000-0", &a), 0, "MS-SEQ parses");
    ok(a.ms == 1732230000000ULL && a.seq == 0, "  ms and seq");
    is_int(parse("5-17", &a), 0, "small id");
    ok(a.ms == 5 && a.seq == 17, "  5-17");
    is_int(parse("42", &a), 0, "MS alone parses");
    ok(a.ms == 42 && a.seq == 0, "  seq defaults to 0");
    is_int(parse("0-0", &a), 0, "0-0 parses");
    ok(streamid_is_zero(&a), "  and is zero");
    is_int(parse("18446744073709551615-18446744073709551615", &a), 0,
           "UINT64_MAX both parts");
    ok(a.ms == UINT64_MAX && a.seq == UINT64_MAX, "  values");
    is_int(parse("18446744073709551616-0", &a), -1, "ms overflow rejected");
    is_int(parse("1-18446744073709551616", &a), -1, "seq overflow rejected");
    is_int(parse("99999999999999999999", &a), -1, "20 nines rejected");
    is_int(parse("", &a), -1, "empty rejected");
    is_int(parse("-", &a), -1, "lone dash rejected");
    is_int(parse("1-", &a), -1, "missing seq rejected");
    is_int(parse("-1", &a), -1, "missing ms rejected");
    is_int(parse("+1-0", &a), -1, "sign rejected");
    is_int(parse(" 1-0", &a), -1, "leading space rejected");
    is_int(parse("1-0 ", &a), -1, "trailing space rejected");
    is_int(parse("1-2-3", &a), -1, "two dashes rejected");
    is_int(parse("1x", &a), -1, "letter rejected");
    is_int(parse("*", &a), -1, "'*' rejected");
    is_int(parse("$", &a), -1, "'$' rejected");
    is_int(streamid_parse("12-3", 2, &a), 0, "only len bytes are read");
    ok(a.ms == 12 && a.seq == 0, "  12");
    is_int(streamid_parse(NULL, 0, &a), -1, "NULL rejected");

    parse("5-3", &a);
    parse("5-10", &b);
    is_int(streamid_cmp(&a, &b), -1, "5-3 < 5-10 (numeric, not string)");
    is_int(streamid_cmp(&b, &a), 1, "5-10 > 5-3");
    parse("4-99", &b);
    is_int(streamid_cmp(&a, &b), 1, "ms decides before seq");
    parse("5-3", &b);
    is_int(streamid_cmp(&a, &b), 0, "equal ids");
    parse("18446744073709551615-0", &b);
    is_int(streamid_cmp(&a, &b), -1, "comparison is unsigned");

    parse("1732230000000-7", &a);
    is_str(streamid_format(&a, buf), "1732230000000-7", "format");
    parse("9", &a);
    is_str(streamid_format(&a, buf), "9-0", "format adds -0");
    a.ms = UINT64_MAX;
    a.seq = UINT64_MAX;
    streamid_format(&a, buf);
    is_str(buf, "18446744073709551615-18446744073709551615",
           "longest id fits STREAMID_STRLEN");
    is_int(strlen(buf) + 1, STREAMID_STRLEN, "  exactly");
    ok(!streamid_is_zero(&a), "max is not zero");

    {
        char after[STREAMID_STRLEN + 1];

        is_str(streamid_format_after(&a, after), "+",
               "after the largest id: \"+\" (Redis refuses its \"(\")");
        parse("5-3", &b);
        is_str(streamid_format_after(&b, after), "(5-3", "after 5-3: (5-3");
        b = streamid_next(&b);
        ok(b.ms == 5 && b.seq == 4, "next of 5-3 is 5-4");
        b.seq = UINT64_MAX;
        b = streamid_next(&b);
        ok(b.ms == 6 && b.seq == 0, "next of 5-MAX is 6-0");
        b = streamid_next(&a);
        ok(streamid_cmp(&a, &b) == 0, "the largest id has no next");
    }

    {
        /* a stream 10-0 .. 20-0, nothing removed */
        struct streamid_log log = {true, 11, {10, 0}, {20, 0}, 0};
        struct streamid_signal sig;

        is_int(judge("0-0", &log, &sig), STREAMID_FINE,
               "since 0-0, untrimmed: fine");
        ok(streamid_is_zero(&sig.from), "  from 0-0");
        is_int(judge("15-0", &log, &sig), STREAMID_FINE, "since inside: fine");
        is_int(judge("20-0", &log, &sig), STREAMID_FINE,
               "since the newest: fine");
        is_int(judge("20-1", &log, &sig), STREAMID_RESET,
               "since past the newest: reset");
        ok(sig.id.ms == 20 && sig.id.seq == 0, "  last_id the newest");
        ok(streamid_cmp(&sig.from, &sig.id) == 0, "  goes on from it");
        is_int(judge("9999999999999-0", &log, &sig), STREAMID_RESET,
               "since from the future: reset");

        /* trimmed: 5 removed, the oldest held is 10-0 */
        log.removed = 5;
        is_int(judge("0-0", &log, &sig), STREAMID_TRUNCATED,
               "since 0-0, trimmed: gap");
        ok(sig.id.ms == 10 && sig.id.seq == 0, "  first_id the oldest held");
        ok(streamid_is_zero(&sig.from), "  replay from since");
        is_int(judge("9-5", &log, &sig), STREAMID_TRUNCATED,
               "since below the oldest: gap");
        is_int(judge("10-0", &log, &sig), STREAMID_FINE,
               "since the oldest held: fine");
        is_int(judge("12-0", &log, &sig), STREAMID_FINE,
               "since above it: fine");

        /* trimmed to nothing */
        log.length = 0;
        log.first = (struct streamid){0, 0};
        is_int(judge("12-0", &log, &sig), STREAMID_TRUNCATED,
               "all trimmed: gap");
        ok(sig.id.ms == 20 && sig.id.seq == 1, "  first_id right after 20-0");
        ok(sig.from.ms == 20 && sig.from.seq == 0, "  goes on from 20-0");
        is_int(judge("20-0", &log, &sig), STREAMID_FINE,
               "all trimmed, since newest: fine");

        /* Redis before 7: whether anything was removed is unknown */
        log = (struct streamid_log){true, 3, {10, 0}, {20, 0}, UINT64_MAX};
        is_int(judge("9-0", &log, &sig), STREAMID_TRUNCATED,
               "unknown removals: gap told");

        /* no stream */
        log = (struct streamid_log){false};
        is_int(judge("0-0", &log, &sig), STREAMID_FINE,
               "no stream, since 0-0: fine");
        is_int(judge("7-0", &log, &sig), STREAMID_RESET,
               "no stream, since 7-0: reset");
        ok(streamid_is_zero(&sig.id) && streamid_is_zero(&sig.from),
           "  to 0-0");
    }
    return tap_done();
}
