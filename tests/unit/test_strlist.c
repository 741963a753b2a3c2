/* test_strlist.c - stepping through comma-separated lists */
#include <string.h>

#include "strlist.h"
#include "tap.h"

int main(void)
{
    const char *list = " a, bb ,\tccc\t,, d", *item;
    const char *want[] = {"a", "bb", "ccc", "", "d"};
    size_t len;
    int i = 0;

    while ((item = strlist_next(&list, &len)) != NULL) {
        ok(i < 5 && len == strlen(want[i]) && strncmp(item, want[i], len) == 0,
           "item %d is [%s] (got [%.*s])", i, i < 5 ? want[i] : "?", (int)len,
           item);
        i++;
    }
    is_int(i, 5, "five items");
    list = "";
    ok(strlist_next(&list, &len) == NULL, "an empty list has no item");
    list = "x,";
    ok(strlist_next(&list, &len) != NULL && len == 1, "x, gives x");
    ok(strlist_next(&list, &len) == NULL, "then the end");
    list = NULL;
    ok(strlist_next(&list, &len) == NULL, "NULL is an empty list");
    ok(strlist_has("keep-alive, Upgrade", "upgrade"),
       "has: any case, blanks trimmed");
    ok(!strlist_has("keep-alive, upgrades", "upgrade"),
       "has: whole items only");
    ok(!strlist_has(NULL, "upgrade"), "has: NULL has nothing");
    return tap_done();
}
