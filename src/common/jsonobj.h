/* jsonobj.h - strict parsing of one JSON object, for the two json-c users
 * (the event codec and the API codec) */
#ifndef CT_JSONOBJ_H
#define CT_JSONOBJ_H

#include <stddef.h>

struct json_object;

/* Parses buf[0..len) as exactly one JSON object, blanks around it allowed.
 * Returns it (the caller puts it), or NULL with *why (if given) saying what
 * was wrong in a few words: "is not JSON", "has data after its JSON value",
 * "is not a JSON object". */
struct json_object *jsonobj_parse(const char *buf, size_t len,
                                  const char **why);

/* Serialises o compactly (no escaped slashes) into a newly allocated
 * string and puts o. *len (if given) gets the length. */
char *jsonobj_finish(struct json_object *o, size_t *len);

#endif
