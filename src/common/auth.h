/* auth.h - tokens: generation, SHA-256 digests, constant-time comparison */
#ifndef CT_AUTH_H
#define CT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_TOKEN_LEN 43 /* base64url of 32 random bytes, no padding */
#define AUTH_HASH_LEN 64  /* hex SHA-256 */

/* Writes a new random token (AUTH_TOKEN_LEN chars + NUL). Returns 0, or -1
 * when the system's random source fails. */
int auth_new_token(char out[AUTH_TOKEN_LEN + 1]);
/* Hex SHA-256 of the token (AUTH_HASH_LEN chars + NUL). */
void auth_hash(const char *token, size_t len, char out[AUTH_HASH_LEN + 1]);
/* Compares two digests of AUTH_HASH_LEN chars in constant time. */
bool auth_hash_equal(const char *a, const char *b);
/* True when the token has the shape auth_new_token makes (cheap reject of
 * garbage before any Redis round trip). */
bool auth_token_wellformed(const char *token, size_t len);
/* Picks the token out of "Bearer <token>" (may be NULL) or, failing that,
 * the query string's token=. Returns a newly allocated string or NULL. */
char *auth_from_request(const char *authorization, const char *qs);

#endif
