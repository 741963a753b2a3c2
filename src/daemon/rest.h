/* rest.h - the request/response calls: register, rooms, send, typing,
 * presence, stats, metrics, health */
#ifndef CT_REST_H
#define CT_REST_H

#include <event2/http.h>

#include "http.h"

void rest_register(struct evhttp_request *req);
void rest_stats(struct evhttp_request *req);
void rest_metrics(struct evhttp_request *req);
void rest_healthz(struct evhttp_request *req);
/* Authenticated calls; each takes ownership of r. */
void rest_rooms(struct request *r);
void rest_send(struct request *r);
void rest_typing(struct request *r);
void rest_presence(struct request *r);

#endif
