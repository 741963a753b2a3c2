/* test_streamid.c - parsing, comparing and formatting stream ids */
#include <string.h>

#include "streamid.h"
#include "tap.h"

static int parse(const char *s, struct streamid *id)
{
    return streamid_parse(s, strlen(s), id);
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
    return tap_done();
}
