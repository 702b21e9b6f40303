/* api.h -- what the HTTP endpoint answers (httpd.c reads requests and writes the answers): the
 * dashboard's files, Prometheus /metrics, and the REST API under /api/v1 (docs/web.md lists every
 * route). Runs on the endpoint's thread; reads the broker through stats.h snapshots and the
 * registry's and sessions' locks, held briefly; a kick goes to the owning worker's inbox. */
#ifndef TOMBO_BROKER_API_H
#define TOMBO_BROKER_API_H

#include "http/http.h"
#include "http/json.h"

struct broker;

typedef struct api_resp {
    int status;
    const char *type;  /* Content-Type */
    const char *extra; /* more header lines, each ending in CRLF, or NULL */
    hbuf_t body;
} api_resp_t;

void api_resp_init(api_resp_t *r);
void api_resp_free(api_resp_t *r);

/* Answer req (its head; the API reads no request body) into r. */
void api_handle(struct broker *b, const http_request_t *req, api_resp_t *r);

#endif
