/* auth.c -- SCRAM-SHA-256 enhanced authentication for libtombo (see auth.h). The PBKDF2 of the
 * password (4096 iterations by default, a few milliseconds) runs in the thread that reads the
 * broker's AUTH, as every client-side SCRAM does: the client has nothing else to do meanwhile. */
#include "auth.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "net.h"
#include "reconnect.h"
#include "pwhash/scram.h"

static bool is_scram(const mqtt_props_t *pr)
{
    size_t n = strlen(SCRAM_METHOD);
    return (pr->has & MQTT_HAS(MQTT_PROP_AUTH_METHOD)) && pr->auth_method.len == n &&
           memcmp(pr->auth_method.p, SCRAM_METHOD, n) == 0;
}

void auth_clear(tombo_client_t *c)
{
    if (c->scram) {
        scram_client_clear(c->scram);
        free(c->scram);
        c->scram = NULL;
    }
}

static void set_method(mqtt_props_t *pr, const char *data, size_t n)
{
    pr->has |= MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA);
    pr->auth_method = (mqtt_bytes_t){(const uint8_t *)SCRAM_METHOD, (uint32_t)strlen(SCRAM_METHOD)};
    pr->auth_data = (mqtt_bytes_t){(const uint8_t *)data, (uint32_t)n};
}

/* A new exchange: client-first into c->scram_out. */
static int start(tombo_client_t *c)
{
    auth_clear(c);
    c->scram = calloc(1, sizeof(*c->scram));
    if (!c->scram)
        return -1;
    int n = scram_client_first(c->scram, c->opts.username, NULL, c->scram_out, sizeof(c->scram_out));
    if (n < 0)
        auth_clear(c);
    return n;
}

tombo_err_t auth_connect_props(tombo_client_t *c, mqtt_props_t *props)
{
    if (!c->opts.auth_method)
        return TOMBO_OK;
    int n = start(c);
    if (n < 0)
        return TOMBO_ERR_NOMEM;
    set_method(props, c->scram_out, (size_t)n);
    return TOMBO_OK;
}

static void fail(tombo_client_t *c, const char *why)
{
    client_log(c, TOMBO_LOG_ERROR, "SCRAM-SHA-256: %s", why);
    auth_clear(c);
    if (c->fd >= 0) {
        mqtt_packet_t d;
        memset(&d, 0, sizeof(d));
        d.type = MQTT_DISCONNECT;
        d.reason = MQTT_RC_PROTOCOL_ERROR;
        if (c->state == CS_CONNECTED) { /* no DISCONNECT before CONNACK */
            net_send_packet(c, &d);
            net_flush(c);
        }
        conn_lost(c, TOMBO_ERR_PROTOCOL, MQTT_RC_PROTOCOL_ERROR, NULL);
    }
}

void auth_on_auth(tombo_client_t *c, const mqtt_packet_t *p)
{
    /* [MQTT-4.12.0-6] no AUTH unless we named a method; [MQTT-4.12.0-5] the same method. */
    if (!c->opts.auth_method || !c->scram || !is_scram(&p->props)) {
        fail(c, "unexpected AUTH from the broker");
        return;
    }
    const mqtt_bytes_t *d = &p->props.auth_data;
    bool has_data = p->props.has & MQTT_HAS(MQTT_PROP_AUTH_DATA);
    if (p->reason == MQTT_RC_SUCCESS) { /* the end of a re-authentication */
        if (c->state != CS_CONNECTED || !has_data || !scram_client_verify(c->scram, d->p, d->len)) {
            fail(c, "the broker did not prove it knows the password");
            return;
        }
        client_log(c, TOMBO_LOG_INFO, "Client %s re-authenticated", c->client_id ? c->client_id : "");
        auth_clear(c);
        return;
    }
    if (p->reason != MQTT_RC_CONTINUE_AUTH || !has_data) {
        fail(c, "unexpected AUTH reason code");
        return;
    }
    const char *why = "server-first-message refused";
    size_t pwlen = c->opts.password ? c->opts.password_len : 0;
    int n = scram_client_final(c->scram, d->p, d->len, (const uint8_t *)(c->opts.password ? c->opts.password : ""),
                               pwlen, c->scram_out, sizeof(c->scram_out), &why);
    if (n < 0) {
        fail(c, why);
        return;
    }
    mqtt_packet_t a;
    memset(&a, 0, sizeof(a));
    a.type = MQTT_AUTH;
    a.reason = MQTT_RC_CONTINUE_AUTH; /* [MQTT-4.12.0-3] */
    set_method(&a.props, c->scram_out, (size_t)n);
    net_send_packet(c, &a);
}

bool auth_connack_ok(tombo_client_t *c, const mqtt_packet_t *p)
{
    if (!c->opts.auth_method)
        return true;
    const mqtt_bytes_t *d = &p->props.auth_data;
    bool ok = c->scram && is_scram(&p->props) && (p->props.has & MQTT_HAS(MQTT_PROP_AUTH_DATA)) &&
              scram_client_verify(c->scram, d->p, d->len);
    auth_clear(c);
    if (!ok)
        client_log(c, TOMBO_LOG_ERROR, "SCRAM-SHA-256: the broker accepted us without proving it knows the password");
    return ok;
}

tombo_err_t auth_reauthenticate(tombo_client_t *c)
{
    if (!c->opts.auth_method)
        return TOMBO_ERR_INVAL;
    if (c->fd < 0 || c->state != CS_CONNECTED)
        return TOMBO_ERR_NO_CONN;
    if (c->scram)
        return TOMBO_ERR_BUSY; /* one exchange at a time */
    int n = start(c);
    if (n < 0)
        return TOMBO_ERR_NOMEM;
    mqtt_packet_t a;
    memset(&a, 0, sizeof(a));
    a.type = MQTT_AUTH;
    a.reason = MQTT_RC_REAUTHENTICATE; /* [MQTT-4.12.1-1] */
    set_method(&a.props, c->scram_out, (size_t)n);
    return net_send_packet(c, &a);
}
