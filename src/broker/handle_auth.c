/* handle_auth.c -- MQTT 5 enhanced authentication (section 4.12): SCRAM-SHA-256 against the
 * `$SCRAM-SHA-256$` entries of the listener's password file, at CONNECT and as re-authentication.
 *
 * Design note. At CONNECT:  CONNECT(method, client-first) -> AUTH 0x18 (server-first)
 *                           -> AUTH 0x18 (client-final) -> CONNACK 0x00 (server-final)
 * Re-authentication:        AUTH 0x19 (client-first) -> AUTH 0x18 (server-first)
 *                           -> AUTH 0x18 (client-final) -> AUTH 0x00 (server-final)
 * The exchange's state lives in c->scram (allocated for the exchange only). The server side of
 * SCRAM does no key stretching (the password file holds StoredKey and ServerKey; the client runs
 * PBKDF2), only a few HMACs, so it runs here on the worker rather than on the auth thread. An
 * unknown user (or one whose entry is not a SCRAM verifier) gets a decoy challenge and fails at the
 * proof like a wrong password, so the exchange does not tell which user names exist. Every failure
 * is 0x87 Not authorized (CONNACK at CONNECT, DISCONNECT on re-authentication), the code Mosquitto
 * uses for every refused login; an Authentication Method this listener does not offer is 0x8C. */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/log.h"
#include "broker/worker.h"
#include "pwhash/scram.h"

static bool is_scram(const mqtt_props_t *pr)
{
    size_t n = strlen(SCRAM_METHOD);
    return (pr->has & MQTT_HAS(MQTT_PROP_AUTH_METHOD)) && pr->auth_method.len == n &&
           memcmp(pr->auth_method.p, SCRAM_METHOD, n) == 0;
}

static void scram_end(conn_t *c)
{
    if (c->scram) {
        scram_server_clear(c->scram);
        free(c->scram);
        c->scram = NULL;
    }
}

static const auth_t *listener_auth(const conn_t *c)
{
    broker_t *b = c->w->b;
    return b->auth[c->l - b->cfg.listeners];
}

/* An AUTH carrying the method and data (server-first, or server-final with reason 0). */
static void send_auth(conn_t *c, uint8_t reason, const char *data, size_t n)
{
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_AUTH;
    p.reason = reason;
    p.props.has = MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA);
    p.props.auth_method = (mqtt_bytes_t){(const uint8_t *)SCRAM_METHOD, (uint32_t)strlen(SCRAM_METHOD)};
    p.props.auth_data = (mqtt_bytes_t){(const uint8_t *)data, (uint32_t)n};
    conn_send(c, &p);
}

/* Parse a client-first message into a new c->scram; false (logged) if it is refused. */
static bool begin(conn_t *c, const mqtt_props_t *pr)
{
    c->scram = xcalloc(1, sizeof(*c->scram));
    const char *why = "no Authentication Data (client-first-message)";
    if (!(pr->has & MQTT_HAS(MQTT_PROP_AUTH_DATA)) ||
        scram_server_parse_first(c->scram, pr->auth_data.p, pr->auth_data.len, &why) != 0) {
        log_printf(TLOG_NOTICE, "Client [%s] SCRAM-SHA-256 refused: %s.", c->peer, why);
        scram_end(c);
        return false;
    }
    return true;
}

uint8_t auth_begin_connect(conn_t *c, const mqtt_props_t *props, char **user)
{
    const auth_t *a = listener_auth(c);
    /* Offered where there is a password file to hold the verifiers, and not where the TLS identity
     * is the user name (no password is checked there at all). */
    if (!is_scram(props) || !auth_has_password_file(a) || c->l->use_identity_as_username ||
        c->l->use_subject_as_username)
        return MQTT_RC_BAD_AUTH_METHOD; /* [MQTT-4.12.0-1] */
    if (!begin(c, props))
        return MQTT_RC_NOT_AUTHORIZED; /* [MQTT-4.12.0-4] */
    c->auth_method = AUTH_METHOD_SCRAM_SHA256;
    *user = xstrndup(c->scram->user, c->scram->user_len);
    return MQTT_RC_SUCCESS;
}

void auth_send_challenge(conn_t *c)
{
    struct scram_verifier v;
    bool other = false;
    bool known = auth_scram_lookup(listener_auth(c), c->scram->user, c->scram->user_len, &v, &other);
    if (other)
        log_printf(TLOG_NOTICE, "Client [%s] SCRAM-SHA-256: user %s has no SCRAM-SHA-256 entry in the password file "
                   "(tombo-passwd -H scram-sha-256).", c->peer, c->scram->user);
    char nonce[40];
    int nl = scram_nonce(nonce, sizeof(nonce));
    if (nl <= 0 || scram_server_challenge(c->scram, &v, known, nonce, (size_t)nl) != 0) {
        /* No random bytes or a client nonce too long to answer: the proof cannot succeed. */
        c->scram->known = false;
        c->scram->first_len = 0;
    }
    memset(&v, 0, sizeof(v));
    send_auth(c, MQTT_RC_CONTINUE_AUTH, c->scram->first, c->scram->first_len); /* [MQTT-4.12.0-2] */
}

/* Check the client-final message; on success the server-final goes into out. */
static int finish(conn_t *c, const mqtt_props_t *pr, char *out, size_t outlen)
{
    const char *why = "no Authentication Data (client-final-message)";
    int n = -1;
    if (pr->has & MQTT_HAS(MQTT_PROP_AUTH_DATA))
        n = scram_server_finish(c->scram, pr->auth_data.p, pr->auth_data.len, out, outlen, &why);
    if (n < 0)
        log_printf(TLOG_NOTICE, "Client [%s] SCRAM-SHA-256 authentication of user %s failed: %s.", c->peer,
                   c->scram->user, why);
    scram_end(c);
    return n;
}

uint8_t handle_auth(conn_t *c, mqtt_packet_t *p)
{
    /* [MQTT-4.12.0-7] no AUTH without a method in CONNECT; [MQTT-4.12.0-5] / [MQTT-4.12.1-1] the
     * same method in every AUTH. */
    if (c->auth_method == AUTH_METHOD_NONE || !is_scram(&p->props))
        return MQTT_RC_PROTOCOL_ERROR;
    char final[128];
    if (c->state == CONN_NEW) {
        /* [MQTT-4.12.0-3] the client answers our AUTH with Continue authentication. */
        if (!c->scram || p->reason != MQTT_RC_CONTINUE_AUTH)
            return MQTT_RC_PROTOCOL_ERROR;
        int n = finish(c, &p->props, final, sizeof(final));
        if (n < 0)
            return MQTT_RC_NOT_AUTHORIZED; /* [MQTT-4.12.0-4]: CONNACK 0x87 and close */
        connect_req_set_auth_final(c->pending, final, (size_t)n);
        return connect_resume(c);
    }
    if (p->reason == MQTT_RC_REAUTHENTICATE) {
        if (c->scram)
            return MQTT_RC_PROTOCOL_ERROR; /* one exchange at a time */
        if (!begin(c, &p->props))
            return MQTT_RC_NOT_AUTHORIZED; /* [MQTT-4.12.1-2] */
        /* The session, its ACLs and its client id belong to the user who logged in. */
        const char *was = c->session ? c->session->username : NULL;
        if (!was || strlen(was) != c->scram->user_len || memcmp(was, c->scram->user, c->scram->user_len) != 0) {
            log_printf(TLOG_NOTICE, "Client [%s] re-authentication as another user (%s) refused.", c->peer,
                       c->scram->user);
            scram_end(c);
            return MQTT_RC_NOT_AUTHORIZED;
        }
        auth_send_challenge(c);
        return MQTT_RC_SUCCESS;
    }
    if (p->reason != MQTT_RC_CONTINUE_AUTH || !c->scram)
        return MQTT_RC_PROTOCOL_ERROR;
    int n = finish(c, &p->props, final, sizeof(final));
    if (n < 0)
        return MQTT_RC_NOT_AUTHORIZED; /* [MQTT-4.12.1-2]: DISCONNECT 0x87 and close */
    send_auth(c, MQTT_RC_SUCCESS, final, (size_t)n);
    return MQTT_RC_SUCCESS;
}
