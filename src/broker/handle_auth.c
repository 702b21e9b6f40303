/* handle_auth.c -- MQTT 5 enhanced authentication (section 4.12): SCRAM-SHA-256 against the
 * `$SCRAM-SHA-256$` entries of the listener's password file, at CONNECT and as re-authentication;
 * and the methods Mosquitto plugins offer (MOSQ_EVT_EXT_AUTH_*, asked first: see below).
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
#include "broker/plugin.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "pwhash/scram.h"

static bool is_method(const mqtt_props_t *pr, const char *method)
{
    size_t n = strlen(method);
    return (pr->has & MQTT_HAS(MQTT_PROP_AUTH_METHOD)) && pr->auth_method.len == n &&
           memcmp(pr->auth_method.p, method, n) == 0;
}

static bool is_scram(const mqtt_props_t *pr)
{
    return is_method(pr, SCRAM_METHOD);
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

/* An AUTH carrying the method and data (server-first, or server-final with reason 0); a plugin's
 * AUTH may have no data. */
static void send_auth_method(conn_t *c, const char *method, uint8_t reason, const char *data, size_t n)
{
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_AUTH;
    p.reason = reason;
    p.props.has = MQTT_HAS(MQTT_PROP_AUTH_METHOD) | (data ? MQTT_HAS(MQTT_PROP_AUTH_DATA) : 0);
    p.props.auth_method = (mqtt_bytes_t){(const uint8_t *)method, (uint32_t)strlen(method)};
    p.props.auth_data = (mqtt_bytes_t){(const uint8_t *)data, (uint32_t)n};
    conn_send(c, &p);
}

static void send_auth(conn_t *c, uint8_t reason, const char *data, size_t n)
{
    send_auth_method(c, SCRAM_METHOD, reason, data, n);
}

/* ---- enhanced authentication by a plugin (MOSQ_EVT_EXT_AUTH_START / _CONTINUE, plugin.h) ----
 * As Mosquitto 2.0's handle_connect / handle_auth: success: CONNACK (at CONNECT, with the
 * plugin's data and no password check) or AUTH 0x00 (re-authentication); MOSQ_ERR_AUTH_CONTINUE:
 * AUTH 0x18 with its data, and the client's AUTH 0x18 goes to EXT_AUTH_CONTINUE; MOSQ_ERR_AUTH
 * (or any other error): 0x87 Not authorized; no plugin taking the method: 0x8C at re-authentication
 * (at CONNECT, tombo's own SCRAM-SHA-256 may still take it). */

static int ask_plugins(conn_t *c, bool start, bool reauth, const mqtt_props_t *pr, const char *id,
                       const char *user, struct auth_plugin_answer *a)
{
    char addr[sizeof(c->peer)];
    conn_address(c, addr, sizeof(addr));
    struct mosquitto who = {.id = id, .username = user, .address = addr, .protocol_version = c->version,
                            .keepalive = c->keepalive, .websockets = c->ws != NULL,
                            .can_set_username = !reauth, .reauth = reauth};
    const void *in = (pr->has & MQTT_HAS(MQTT_PROP_AUTH_DATA)) ? pr->auth_data.p : NULL;
    uint16_t inlen = in ? (uint16_t)(pr->auth_data.len > 65535 ? 65535 : pr->auth_data.len) : 0;
    int rc = plugin_ext_auth(auth_plugins(listener_auth(c)), start, &who, c->auth_method_name, in, inlen, &a->data,
                             &a->len);
    a->rc = rc;
    if (who.username_changed && (rc == PLUGIN_EXT_SUCCESS || rc == PLUGIN_EXT_CONTINUE)) {
        free(a->username);
        a->username = who.set_username;
        a->username_changed = true;
    } else {
        free(who.set_username);
    }
    if (rc != PLUGIN_EXT_SUCCESS && rc != PLUGIN_EXT_CONTINUE) {
        free(a->data);
        a->data = NULL;
        a->len = 0;
        log_printf(TLOG_NOTICE, "Client [%s] enhanced authentication (%s) %s by the plugins.", c->peer,
                   c->auth_method_name, rc == PLUGIN_EXT_NOT_SUPPORTED ? "not offered" : "refused");
    }
    return rc;
}

uint8_t auth_plugin_start(conn_t *c, const mqtt_packet_t *p, const char *id, size_t idlen,
                          struct auth_plugin_answer *a)
{
    const mqtt_props_t *pr = &p->props;
    free(c->auth_method_name);
    c->auth_method_name = xstrndup((const char *)pr->auth_method.p, pr->auth_method.len);
    char *cid = xstrndup(id, idlen);
    char *user = p->connect.has_username ? xstrndup((const char *)p->connect.username.p, p->connect.username.len) : NULL;
    int rc = ask_plugins(c, true, false, pr, cid, user, a);
    free(cid);
    free(user);
    if (rc == PLUGIN_EXT_SUCCESS || rc == PLUGIN_EXT_CONTINUE) {
        c->auth_method = AUTH_METHOD_PLUGIN;
        return MQTT_RC_SUCCESS;
    }
    free(a->username);
    a->username = NULL;
    free(c->auth_method_name);
    c->auth_method_name = NULL;
    return rc == PLUGIN_EXT_NOT_SUPPORTED ? MQTT_RC_BAD_AUTH_METHOD : MQTT_RC_NOT_AUTHORIZED;
}

uint8_t auth_plugin_connect(conn_t *c, struct auth_plugin_answer *a)
{
    if (a->username_changed) {
        connect_req_set_username(c->pending, a->username);
        a->username = NULL;
    }
    if (a->rc == PLUGIN_EXT_CONTINUE) {
        c->plugin_auth = 1;
        send_auth_method(c, c->auth_method_name, MQTT_RC_CONTINUE_AUTH, a->data, a->len);
        free(a->data);
        return MQTT_RC_SUCCESS;
    }
    if (a->data)
        connect_req_set_auth_final(c->pending, a->data, a->len);
    free(a->data);
    return connect_resume(c);
}

static uint8_t plugin_auth_packet(conn_t *c, mqtt_packet_t *p)
{
    if (!is_method(&p->props, c->auth_method_name))
        return MQTT_RC_PROTOCOL_ERROR; /* [MQTT-4.12.0-5] / [MQTT-4.12.1-1] */
    struct auth_plugin_answer a = {0, NULL, 0, NULL, false};
    if (c->state == CONN_NEW) {
        if (!c->plugin_auth || p->reason != MQTT_RC_CONTINUE_AUTH)
            return MQTT_RC_PROTOCOL_ERROR; /* [MQTT-4.12.0-3] */
        int rc = ask_plugins(c, false, false, &p->props, connect_req_id(c->pending),
                             connect_req_username(c->pending), &a);
        if (rc == PLUGIN_EXT_CONTINUE || rc == PLUGIN_EXT_SUCCESS) {
            if (rc == PLUGIN_EXT_SUCCESS)
                c->plugin_auth = 0;
            return auth_plugin_connect(c, &a);
        }
        return rc == PLUGIN_EXT_NOT_SUPPORTED ? MQTT_RC_BAD_AUTH_METHOD : MQTT_RC_NOT_AUTHORIZED;
    }
    bool start = p->reason == MQTT_RC_REAUTHENTICATE;
    if (!start && (p->reason != MQTT_RC_CONTINUE_AUTH || !c->plugin_auth))
        return MQTT_RC_PROTOCOL_ERROR;
    if (start && c->plugin_auth)
        return MQTT_RC_PROTOCOL_ERROR; /* one exchange at a time */
    char *user = c->session ? session_username_dup(c->session) : NULL;
    int rc = ask_plugins(c, start, start, &p->props, c->session ? c->session->client_id : NULL, user, &a);
    free(user);
    free(a.username); /* the user name stays what it was for the session (mosquitto_set_username: not here) */
    if (rc == PLUGIN_EXT_CONTINUE || rc == PLUGIN_EXT_SUCCESS) {
        c->plugin_auth = rc == PLUGIN_EXT_CONTINUE;
        send_auth_method(c, c->auth_method_name, rc == PLUGIN_EXT_CONTINUE ? MQTT_RC_CONTINUE_AUTH : MQTT_RC_SUCCESS,
                         a.data, a.len);
        free(a.data);
        return MQTT_RC_SUCCESS;
    }
    c->plugin_auth = 0;
    return rc == PLUGIN_EXT_NOT_SUPPORTED ? MQTT_RC_BAD_AUTH_METHOD : MQTT_RC_NOT_AUTHORIZED; /* [MQTT-4.12.1-2] */
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
    if (c->auth_method == AUTH_METHOD_PLUGIN)
        return plugin_auth_packet(c, p);
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
