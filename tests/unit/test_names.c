/* test_names.c - user and room name rules */
#include <string.h>

#include "names.h"
#include "tap.h"

#define U(s) names_user_valid(s, strlen(s))
#define R(s) names_room_valid(s, strlen(s))

int main(void)
{
    ok(U("alice"), "plain user name");
    ok(U("A.b-c_9"), "user name with every allowed punctuation");
    ok(U("x"), "one-character user name");
    ok(U("abcdefghijklmnopqrstuvwxyz012345"), "32-character user name");
    ok(!U("abcdefghijklmnopqrstuvwxyz0123456"), "33 characters rejected");
    ok(!U(""), "empty user name rejected");
    ok(!U("al ice"), "space rejected");
    ok(!U("al/ice"), "slash rejected");
    ok(!U("al:ice"), "colon rejected (it would split Redis keys)");
    ok(!U("\xc3\xa9l"), "non-ASCII rejected");
    ok(!names_user_valid("ab\0cd", 5), "embedded NUL rejected");
    ok(!names_user_valid(NULL, 0), "NULL rejected");
    ok(names_user_valid("alice!!", 5), "only len bytes are checked");

    ok(R("lobby"), "plain room name");
    ok(R("room-1_b"), "room with - and _");
    ok(!R("Lobby"), "upper case rejected in a room");
    ok(!R("a.b"), "dot rejected in a room");
    ok(!R(""), "empty room rejected");
    ok(R("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
       "64-character room");
    ok(!R("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
       "65 characters rejected");
    ok(!R("lob*"), "glob character rejected");
    ok(!R("a{b}"), "braces rejected");
    {
        char out[NAME_USER_MAX + 1];
        names_user_fold("ALICE1", out);
        is_str(out, "alice1", "a user name folds to lower case");
        names_user_fold("Bob_.-9", out);
        is_str(out, "bob_.-9", "only letters change");
        names_user_fold("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef", out);
        is_str(out, "abcdefghijklmnopqrstuvwxyzabcdef", "32 characters");
        strcpy(out, "MiXeD");
        names_user_fold(out, out);
        is_str(out, "mixed", "in place");
    }
    return tap_done();
}
