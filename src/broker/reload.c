/* reload.c -- SIGHUP: the config file read again and what Mosquitto reloads applied (the settings
 * of settings.h, the log, the password and ACL files, the TLS listeners' files), while the workers
 * run; a change that needs a restart (listeners, persistence, threads, ...) is logged as "cannot
 * be reloaded: restart to apply" and otherwise ignored, as Mosquitto does.
 *
 * Design: the new file is parsed into a configuration of its own. When it does not parse, nothing
 * changes but the log file's reopening (logrotate sends SIGHUP too), and the error names FILE:LINE.
 * Otherwise the new settings are published as a new snapshot (settings.h); the broker's `cfg`
 * stays the one read at start-up, the listeners opened from it stay open. Runs on worker 0. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/authq.h"
#include "broker/bridge.h"
#include "broker/plugin.h"
#include "broker/broker.h"
#include "broker/httpd.h"
#include "broker/listener.h"
#include "broker/log.h"
#include "broker/transport.h"

static bool str_same(const char *a, const char *b)
{
    return a && b ? !strcmp(a, b) : a == b;
}

/* A directive whose new value needs a restart: where it lives in the config, or in a listener. */
struct fixed {
    const char *name;
    size_t off;
    size_t size; /* 0: a string */
};
#define FIX_G(n) {#n, offsetof(struct tombo_config, n), sizeof(((struct tombo_config *)0)->n)}
#define FIX_GS(n) {#n, offsetof(struct tombo_config, n), 0}
#define FIX_L(n) {#n, offsetof(struct tombo_listener, n), sizeof(((struct tombo_listener *)0)->n)}
#define FIX_LS(n) {#n, offsetof(struct tombo_listener, n), 0}

/* Mosquitto reloads persistence, persistence_file, persistence_location and per_listener_settings;
 * tombo does not (docs/config.md says so): the store and the authentication sets are built once. */
static const struct fixed global_fixed[] = {
    FIX_G(persistence), FIX_GS(persistence_location), FIX_GS(persistence_file), FIX_GS(pid_file),
    FIX_G(per_listener_settings), FIX_G(threads), FIX_GS(user),
    /* the cluster: its NATS connection and buckets are made once (cluster_nats_url: the first) */
    FIX_GS(cluster_node), {"cluster_nats_user", offsetof(struct tombo_config, cluster_user), 0},
    {"cluster_nats_password", offsetof(struct tombo_config, cluster_password), 0},
    {"cluster_nats_token", offsetof(struct tombo_config, cluster_token), 0},
    {"cluster_kv_replicas", offsetof(struct tombo_config, cluster_replicas), sizeof(int)},
    {"cluster_durability", offsetof(struct tombo_config, cluster_durability), sizeof(int)},
    {"cluster_sessions", offsetof(struct tombo_config, cluster_sessions), sizeof(int)},
    {"cluster_nats_url", offsetof(struct tombo_config, n_cluster_urls), sizeof(int)},
};

/* What makes a listener besides its socket (port, address, socket_domain: config_listener_same). */
static const struct fixed listener_fixed[] = {
    FIX_LS(bind_interface), FIX_L(max_connections), FIX_L(max_qos), FIX_L(max_topic_alias),
    FIX_L(use_username_as_clientid), FIX_LS(mount_point), FIX_LS(http_dir), FIX_LS(cafile), FIX_LS(capath), FIX_LS(certfile), FIX_LS(keyfile),
    FIX_LS(crlfile), FIX_LS(dhparamfile), FIX_LS(tls_version), FIX_LS(ciphers),
    {"ciphers_tls1.3", offsetof(struct tombo_listener, ciphers_tls13), 0}, FIX_LS(psk_hint), FIX_LS(psk_file),
    FIX_L(require_certificate), FIX_L(use_identity_as_username), FIX_L(use_subject_as_username),
};

static bool fixed_same(const struct fixed *f, const void *a, const void *b)
{
    const char *pa = (const char *)a + f->off, *pb = (const char *)b + f->off;
    if (!f->size)
        return str_same(*(char *const *)pa, *(char *const *)pb);
    return !memcmp(pa, pb, f->size);
}

static void cannot(const char *where, const char *what)
{
    log_printf(TLOG_WARNING, "Warning: %s: %s: cannot be reloaded: restart to apply.", where, what);
}

/* Log every change of nw against the running configuration that a reload cannot apply. Returns
 * whether the security settings may be applied (per_listener_settings is unchanged). */
static bool report_fixed(const struct tombo_config *old, const struct tombo_config *nw)
{
    const char *file = nw->config_file;
    for (size_t i = 0; i < sizeof(global_fixed) / sizeof(global_fixed[0]); i++)
        if (!fixed_same(&global_fixed[i], old, nw))
            cannot(file, global_fixed[i].name);
    char what[400], desc[300];
    for (int k = 0; k < nw->n_listeners; k++) {
        const struct tombo_listener *n = &nw->listeners[k], *o = NULL;
        for (int i = 0; i < old->n_listeners && !o; i++)
            if (config_listener_same(&old->listeners[i], n))
                o = &old->listeners[i];
        listener_describe(n, desc, sizeof(desc));
        if (!o) {
            snprintf(what, sizeof(what), "new %s", desc);
            cannot(n->origin ? n->origin : file, what);
            continue;
        }
        for (size_t i = 0; i < sizeof(listener_fixed) / sizeof(listener_fixed[0]); i++)
            if (!fixed_same(&listener_fixed[i], o, n)) {
                snprintf(what, sizeof(what), "%s of %s", listener_fixed[i].name, desc);
                cannot(n->origin ? n->origin : file, what);
            }
    }
    for (int i = 0; i < old->n_listeners; i++) {
        bool kept = false;
        for (int k = 0; k < nw->n_listeners && !kept; k++)
            kept = config_listener_same(&old->listeners[i], &nw->listeners[k]);
        if (!kept) {
            listener_describe(&old->listeners[i], desc, sizeof(desc));
            snprintf(what, sizeof(what), "%s is no longer configured (it stays open)", desc);
            cannot(file, what);
        }
    }
    return old->per_listener_settings == nw->per_listener_settings;
}

/* The password and ACL files of auth set i: those nw names for it (security true), else the ones
 * in force; read again either way. */
static void reload_auth(broker_t *b, const struct tombo_config *nw, bool security)
{
    bool passwords = false;
    for (int i = 0; i < b->cfg.n_listeners; i++) {
        if (i > 0 && !b->cfg.per_listener_settings)
            break; /* one auth_t for all listeners */
        auth_t *a = b->auth[i];
        /* Plugins get MOSQ_EVT_RELOAD with their options as loaded; plugin lines themselves are not
         * read again (as in Mosquitto: a new plugin or option needs a restart). */
        plugin_set_reload(auth_plugins(a));
        const char *pw = auth_password_file(a), *acl = auth_acl_file(a);
        if (security && !nw->per_listener_settings) {
            pw = nw->password_file;
            acl = nw->acl_file;
        } else if (security) {
            for (int k = 0; k < nw->n_listeners; k++)
                if (config_listener_same(&b->cfg.listeners[i], &nw->listeners[k])) {
                    pw = nw->listeners[k].password_file;
                    acl = nw->listeners[k].acl_file;
                    break;
                }
        }
        bool changed = !str_same(pw, auth_password_file(a)) || !str_same(acl, auth_acl_file(a));
        if (!changed && !pw && !acl)
            continue;
        char err[512];
        if (auth_reload_files(a, pw, acl, err, sizeof(err)) != 0) {
            log_printf(TLOG_ERR, "Error: reloading the password or ACL file: %s; the previous ones stay in force.",
                       err);
        } else {
            for (int k = 0; auth_warning(a, k); k++)
                log_printf(TLOG_WARNING, "Warning: %s", auth_warning(a, k));
            log_printf(TLOG_NOTICE, "Reloaded the password and ACL files.");
        }
        passwords |= auth_has_password_file(a);
    }
    bridges_reload(b); /* their local_password against the files now in force */
    /* A password file where there was none: its checks go to their own thread, as at start-up. */
    if (passwords && !atomic_load(&b->authq)) {
        authq_t *q = authq_start(b, 1);
        if (q)
            atomic_store_explicit(&b->authq, q, memory_order_release);
        else
            log_printf(TLOG_WARNING, "Warning: cannot start the authentication thread: passwords are checked "
                                     "on the workers.");
    }
}

void broker_reload(broker_t *b)
{
    log_printf(TLOG_NOTICE, "Reloading config.");
    struct tombo_config nw;
    config_init(&nw);
    if (!b->cfg.config_file) {
        /* No file to read again: the files the defaults name. */
        config_free(&nw);
        log_reopen();
        tls_listeners_reload(b);
        httpd_reload(b);
        reload_auth(b, NULL, false);
        return;
    }
    nw.verbose = b->cfg.verbose;
    memcpy(nw.cmd_ports, b->cfg.cmd_ports, sizeof(nw.cmd_ports));
    nw.n_cmd_ports = b->cfg.n_cmd_ports;
    char err[1024];
    if (config_load(&nw, b->cfg.config_file, err, sizeof(err)) != 0) {
        log_reopen();
        log_printf(TLOG_ERR, "Error: %s; the configuration is not reloaded, the previous one stays in force.", err);
        config_free(&nw);
        return;
    }
    bool security = report_fixed(&b->cfg, &nw);
    if (log_configure(&nw) != 0) {
        log_reopen();
        log_printf(TLOG_ERR, "Error: the new log settings cannot be applied (see above); the previous ones stay.");
    }
    const settings_t *prev = broker_settings(b);
    settings_publish(b, settings_new(&nw, &b->cfg, prev, security));
    tls_listeners_reload(b);
    httpd_reload(b); /* http_password_file; the endpoint's address and certificate need a restart */
    reload_auth(b, &nw, security);
    log_printf(TLOG_NOTICE, "Reloaded the configuration from %s.", nw.config_file);
    config_free(&nw);
}
