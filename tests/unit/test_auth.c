/* test_auth.c - tokens, digests and where a request carries its token */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "tap.h"

static void from_is(const char *authz, const char *qs, const char *want)
{
    char *t = auth_from_request(authz, qs);

    is_str(t, want, "auth_from_request(%s, %s)", authz ? authz : "NULL",
           qs ? qs : "NULL");
    free(t);
}

int main(void)
{
    char a[AUTH_TOKEN_LEN + 1], b[AUTH_TOKEN_LEN + 1];
    char h[AUTH_HASH_LEN + 1], h2[AUTH_HASH_LEN + 1];
    size_t i;
    int shape = 1;

    is_int(auth_new_token(a), 0, "new token");
    is_int(strlen(a), 43, "  43 characters");
    for (i = 0; i < strlen(a); i++)
        if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789-_",
                   a[i]) == NULL)
            shape = 0;
    ok(shape, "  base64url alphabet only: %s", a);
    ok(auth_token_wellformed(a, strlen(a)), "  well formed");
    auth_new_token(b);
    ok(strcmp(a, b) != 0, "two tokens differ");
    {
        int all = 1;

        for (i = 0; i < 200; i++) {
            auth_new_token(b);
            if (!auth_token_wellformed(b, strlen(b)))
                all = 0;
        }
        ok(all, "200 new tokens are all well formed");
    }

    ok(!auth_token_wellformed(a, 42), "42 characters rejected");
    ok(!auth_token_wellformed("", 0), "empty rejected");
    ok(!auth_token_wellformed(NULL, 43), "NULL rejected");
    memcpy(b, a, sizeof(b));
    b[10] = '+';
    ok(!auth_token_wellformed(b, 43), "'+' (plain base64) rejected");
    b[10] = '=';
    ok(!auth_token_wellformed(b, 43), "'=' rejected");
    memcpy(b, a, sizeof(b));
    b[42] = 'B'; /* low bits set: no 32-byte value encodes to this */
    ok(!auth_token_wellformed(b, 43), "impossible last character rejected");
    b[42] = 'E';
    ok(auth_token_wellformed(b, 43), "possible last character accepted");

    auth_hash("abc", 3, h);
    is_str(h,
           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "SHA-256 of \"abc\" (FIPS 180-2 vector)");
    auth_hash("", 0, h);
    is_str(h,
           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
           "SHA-256 of the empty string");
    auth_hash("abcd", 3, h2);
    auth_hash("abc", 3, h);
    ok(auth_hash_equal(h, h2), "only len bytes are hashed; equal digests");
    h2[63] = h2[63] == '0' ? '1' : '0';
    ok(!auth_hash_equal(h, h2), "last character differs");
    ok(!auth_hash_equal(h, "ba7816bf"), "short digest never equal");
    ok(!auth_hash_equal(NULL, h), "NULL never equal");

    from_is("Bearer abc", NULL, "abc");
    from_is("bearer   abc  ", NULL, "abc");
    from_is("Bearer abc", "token=zzz", "abc");
    from_is("Basic dXNlcg==", "token=zzz", "zzz");
    from_is("Bearer", "token=zzz", "zzz");
    from_is("Bearer ", "token=zzz", "zzz");
    from_is("Bearerabc", NULL, NULL);
    from_is(NULL, "since=1-0&token=a-b_c", "a-b_c");
    from_is(NULL, "token=a%2Db", "a-b");
    from_is(NULL, "token=", NULL);
    from_is(NULL, "token=%zz", NULL);
    from_is(NULL, NULL, NULL);
    return tap_done();
}
