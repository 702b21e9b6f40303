/* test_broker_config.c -- the broker's configuration (mosquitto.conf syntax and meaning), command
 * line and log: defaults, every directive, listener blocks, include_dir order, each error message
 * with FILE:LINE, command-line flags, and log lines (format, levels, destinations, threads). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/config.h"
#include "broker/log.h"

#include "unit.h"

static char tmpdir[256];

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

/* Load `text` as a config file; returns config_load's result, err holds its message. */
static int load(struct tombo_config *cfg, const char *text, char *err, size_t errlen)
{
    config_init(cfg);
    err[0] = '\0';
    return config_load(cfg, write_file("t.conf", text), err, errlen);
}

static void test_defaults_no_config(void)
{
    struct tombo_config cfg;
    char err[512] = "";
    config_init(&cfg);
    char *argv[] = {"tombo", NULL};
    CHECK(config_args(&cfg, 1, argv, err, sizeof(err)) == 0);
    CHECK(cfg.local_only);
    CHECK(cfg.n_listeners == 2);
    CHECK_STR(cfg.listeners[0].address, "127.0.0.1");
    CHECK(cfg.listeners[0].port == 1883 && !cfg.listeners[0].optional);
    CHECK_STR(cfg.listeners[1].address, "::1");
    CHECK(cfg.listeners[1].port == 1883 && cfg.listeners[1].optional);
    CHECK(cfg.allow_anonymous == 1);
    CHECK(cfg.listeners[0].allow_anonymous == 1 && cfg.listeners[1].allow_anonymous == 1);
    CHECK(cfg.listeners[0].max_qos == 2);
    CHECK(cfg.listeners[0].max_connections == -1);
    CHECK(cfg.allow_zero_length_clientid);
    CHECK_STR(cfg.auto_id_prefix, "auto-");
    CHECK_STR(cfg.listeners[0].auto_id_prefix, "auto-");
    CHECK(cfg.password_file == NULL && cfg.acl_file == NULL);
    CHECK(!cfg.persistence);
    CHECK(cfg.persistence_location == NULL);
    CHECK_STR(cfg.persistence_file, "tombo.db");
    CHECK(cfg.max_queued_messages == 1000);
    CHECK(cfg.max_queued_bytes == 0);
    CHECK(cfg.max_inflight_messages == 20);
    CHECK(cfg.message_size_limit == 0);
    CHECK(cfg.max_packet_size == 0);
    CHECK(cfg.max_keepalive == 65535);
    CHECK(cfg.persistent_client_expiration == 0);
    CHECK(!cfg.set_tcp_nodelay);
    CHECK(cfg.sys_interval == 10);
    CHECK(cfg.retain_available);
    CHECK(!cfg.queue_qos0_messages);
    CHECK(!cfg.check_retain_source); /* what Mosquitto 2.0 does (its man page says true) */
    CHECK(cfg.connection_messages);
    CHECK(cfg.log_type == (TLOG_ERR | TLOG_WARNING | TLOG_NOTICE | TLOG_INFO));
    CHECK(cfg.log_dest == TLOG_DEST_STDERR);
    CHECK(cfg.log_timestamp);
    CHECK(cfg.log_timestamp_format == NULL);
    CHECK(cfg.threads == (int)sysconf(_SC_NPROCESSORS_ONLN));
    CHECK(cfg.n_warnings >= 1); /* "Starting in local only mode" */
    CHECK(cfg.config_file == NULL);
    config_free(&cfg);
}

static void test_every_directive(void)
{
    struct tombo_config cfg;
    char err[512];
    int rc = load(&cfg,
                  "# every directive tombo accepts\n"
                  "\n"
                  "allow_anonymous true\n"
                  "password_file /etc/tombo/passwd\n"
                  "acl_file /etc/tombo/acl\n"
                  "allow_zero_length_clientid false\n"
                  "auto_id_prefix gen-\n"
                  "persistence true\n"
                  "persistence_location /var/lib/tombo/\n"
                  "persistence_file my.db\n"
                  "autosave_interval 60\n"
                  "persistent_client_expiration 2w\n"
                  "max_queued_messages 0\n"
                  "max_queued_bytes 10000000000\n"
                  "max_inflight_messages 0\n"
                  "max_inflight_bytes 0\n"
                  "message_size_limit 268435455\n"
                  "max_packet_size 1024\n"
                  "max_keepalive 120\n"
                  "set_tcp_nodelay true\n"
                  "sys_interval 0\n"
                  "retain_available false\n"
                  "upgrade_outgoing_qos false\n"
                  "queue_qos0_messages true\n"
                  "check_retain_source true\n"
                  "connection_messages false\n"
                  "log_type error\n"
                  "log_type subscribe unsubscribe\n"
                  "log_dest stdout\n"
                  "log_dest file /tmp/tombo log.txt\n"
                  "log_timestamp false\n"
                  "log_timestamp_format %Y-%m-%dT%H:%M:%S %z\n"
                  "autosave_on_changes true\n"
                  "allow_duplicate_messages false\n"
                  "retry_interval 20\n"
                  "retained_persistence true\n"
                  "threads 3\n"
                  "listener 1884\n"
                  "protocol mqtt\n"
                  "max_connections 100\n"
                  "max_qos 1\n",
                  err, sizeof(err));
    CHECK(rc == 0);
    if (rc)
        fprintf(stderr, "  err: %s\n", err);
    CHECK(cfg.allow_anonymous == 1);
    CHECK_STR(cfg.password_file, "/etc/tombo/passwd");
    CHECK_STR(cfg.acl_file, "/etc/tombo/acl");
    CHECK(!cfg.allow_zero_length_clientid);
    CHECK_STR(cfg.auto_id_prefix, "gen-");
    CHECK(cfg.persistence);
    CHECK_STR(cfg.persistence_location, "/var/lib/tombo/");
    CHECK_STR(cfg.persistence_file, "my.db");
    CHECK(cfg.persistent_client_expiration == 14 * 86400);
    CHECK(cfg.max_queued_messages == 0);
    CHECK(cfg.max_queued_bytes == 10000000000ull);
    CHECK(cfg.max_inflight_messages == 0);
    CHECK(cfg.message_size_limit == 268435455);
    CHECK(cfg.max_packet_size == 1024);
    CHECK(cfg.max_keepalive == 120);
    CHECK(cfg.set_tcp_nodelay);
    CHECK(cfg.sys_interval == 0);
    CHECK(!cfg.retain_available);
    CHECK(cfg.queue_qos0_messages);
    CHECK(cfg.check_retain_source);
    CHECK(!cfg.connection_messages);
    CHECK(cfg.log_type == (TLOG_ERR | TLOG_SUBSCRIBE | TLOG_UNSUBSCRIBE));
    CHECK(cfg.log_dest == (TLOG_DEST_STDOUT | TLOG_DEST_FILE));
    CHECK_STR(cfg.log_file, "/tmp/tombo log.txt");
    CHECK(!cfg.log_timestamp);
    CHECK_STR(cfg.log_timestamp_format, "%Y-%m-%dT%H:%M:%S %z");
    CHECK(cfg.threads == 3);
    bool retry_warned = false; /* retry_interval: a warning and nothing else, as in Mosquitto 2 */
    for (int i = 0; i < cfg.n_warnings; i++)
        retry_warned |= strstr(cfg.warnings[i], "t.conf:35: the retry_interval option is no longer available") != NULL;
    CHECK(retry_warned);
    CHECK(!cfg.local_only);
    CHECK(cfg.n_listeners == 1);
    struct tombo_listener *l = &cfg.listeners[0];
    CHECK(l->port == 1884);
    CHECK(l->address == NULL);
    CHECK(l->max_connections == 100);
    CHECK(l->max_qos == 1);
    /* global security copied into the listener */
    CHECK(l->allow_anonymous == 1);
    CHECK_STR(l->password_file, "/etc/tombo/passwd");
    CHECK_STR(l->acl_file, "/etc/tombo/acl");
    CHECK(!l->allow_zero_length_clientid);
    CHECK_STR(l->auto_id_prefix, "gen-");
    char origin[600];
    snprintf(origin, sizeof(origin), "%s/t.conf:38", tmpdir);
    CHECK_STR(l->origin, origin);
    char path[256];
    CHECK(config_persistence_path(&cfg, path, sizeof(path)) == 0);
    CHECK_STR(path, "/var/lib/tombo/my.db");
    config_free(&cfg);
}

static void test_syntax(void)
{
    struct tombo_config cfg;
    char err[512];
    /* indented lines and comments, CRLF, tabs, trailing blanks, comment after a word value */
    int rc = load(&cfg,
                  "   # indented comment\r\n"
                  "\t\r\n"
                  "  listener 1885 127.0.0.1   \r\n"
                  "allow_anonymous\ttrue # the tutorial\n"
                  "max_inflight_messages 5   \n"
                  "log_type all\n"
                  "log_type none\n"
                  "log_type warning\n"
                  "log_dest none\n",
                  err, sizeof(err));
    CHECK(rc == 0);
    if (rc)
        fprintf(stderr, "  err: %s\n", err);
    CHECK(cfg.n_listeners == 1 && cfg.listeners[0].port == 1885);
    CHECK_STR(cfg.listeners[0].address, "127.0.0.1");
    CHECK(cfg.allow_anonymous == 1);
    CHECK(cfg.max_inflight_messages == 5);
    CHECK(cfg.log_type == TLOG_WARNING);
    CHECK(cfg.log_dest == TLOG_DEST_NONE);
    config_free(&cfg);

    /* log_dest dlt: the DLT daemon, next to the other destinations (Mosquitto built WITH_DLT) */
    rc = load(&cfg, "log_dest dlt stderr\n", err, sizeof(err));
    CHECK(rc == 0);
    CHECK(cfg.log_dest == (TLOG_DEST_DLT | TLOG_DEST_STDERR));
    config_free(&cfg);

    /* persistent_client_expiration units */
    static const struct { const char *v; uint32_t s; } exp[] = {
        {"1h", 3600}, {"2d", 172800}, {"1w", 604800}, {"1m", 2592000}, {"1y", 31536000},
    };
    for (size_t i = 0; i < sizeof(exp) / sizeof(exp[0]); i++) {
        char text[100];
        snprintf(text, sizeof(text), "persistent_client_expiration %s\n", exp[i].v);
        CHECK(load(&cfg, text, err, sizeof(err)) == 0);
        CHECK(cfg.persistent_client_expiration == exp[i].s);
        config_free(&cfg);
    }
}

static void test_listener_blocks(void)
{
    struct tombo_config cfg;
    char err[512];
    int rc = load(&cfg,
                  "listener 1883 127.0.0.1\n"
                  "max_qos 1\n"
                  "listener 8080\n"
                  "protocol mqtt\n"
                  "max_connections 10\n"
                  "listener 8883 0.0.0.0\n"
                  "max_qos 0\n",
                  err, sizeof(err));
    CHECK(rc == 0);
    CHECK(cfg.n_listeners == 3);
    CHECK(!cfg.local_only);
    CHECK(cfg.allow_anonymous == 0); /* Mosquitto 2: false once listeners are defined */
    CHECK(cfg.listeners[0].port == 1883 && cfg.listeners[0].max_qos == 1);
    CHECK(cfg.listeners[0].max_connections == -1);
    CHECK(cfg.listeners[1].port == 8080 && cfg.listeners[1].address == NULL);
    CHECK(cfg.listeners[1].max_connections == 10);
    CHECK(cfg.listeners[1].max_qos == 2);
    CHECK_STR(cfg.listeners[2].address, "0.0.0.0");
    CHECK(cfg.listeners[2].max_qos == 0);
    for (int i = 0; i < cfg.n_listeners; i++)
        CHECK(cfg.listeners[i].allow_anonymous == 0);
    config_free(&cfg);

    /* per_listener_settings: security lines belong to the listener above them */
    rc = load(&cfg,
              "per_listener_settings true\n"
              "listener 1883 127.0.0.1\n"
              "allow_anonymous true\n"
              "auto_id_prefix local-\n"
              "listener 1884\n"
              "password_file /etc/pw\n"
              "acl_file /etc/acl\n"
              "allow_zero_length_clientid false\n",
              err, sizeof(err));
    CHECK(rc == 0);
    CHECK(cfg.per_listener_settings);
    CHECK(cfg.n_listeners == 2);
    CHECK(cfg.listeners[0].allow_anonymous == 1);
    CHECK_STR(cfg.listeners[0].auto_id_prefix, "local-");
    CHECK(cfg.listeners[0].password_file == NULL);
    CHECK(cfg.listeners[0].allow_zero_length_clientid);
    CHECK(cfg.listeners[1].allow_anonymous == 0);
    CHECK_STR(cfg.listeners[1].password_file, "/etc/pw");
    CHECK_STR(cfg.listeners[1].acl_file, "/etc/acl");
    CHECK(!cfg.listeners[1].allow_zero_length_clientid);
    CHECK_STR(cfg.listeners[1].auto_id_prefix, "auto-");
    CHECK(cfg.password_file == NULL);
    config_free(&cfg);

    /* protocol websockets applies to its listener only; websockets_headers_size is global */
    rc = load(&cfg, "listener 1883\nlistener 8080\nprotocol websockets\nlistener 8081\nprotocol mqtt\n", err,
              sizeof(err));
    CHECK(rc == 0);
    CHECK(!cfg.listeners[0].websockets && cfg.listeners[1].websockets && !cfg.listeners[2].websockets);
    CHECK(cfg.websockets_headers_size == 4096);
    config_free(&cfg);
    rc = load(&cfg, "websockets_headers_size 8192\n", err, sizeof(err));
    CHECK(rc == 0 && cfg.websockets_headers_size == 8192);
    config_free(&cfg);
    rc = load(&cfg, "websockets_headers_size 0\n", err, sizeof(err));
    CHECK(rc == 0 && cfg.websockets_headers_size == 4096); /* 0: the default, as in Mosquitto */
    config_free(&cfg);

    /* per_listener_settings: a security line before any listener is the default listener's, which
     * stays closed without port/bind_address (Mosquitto); the listener below keeps its defaults */
    rc = load(&cfg, "per_listener_settings true\nallow_anonymous true\nlistener 2000\n", err, sizeof(err));
    CHECK(rc == 0);
    CHECK(cfg.n_listeners == 1);
    CHECK(cfg.listeners[0].port == 2000);
    CHECK(cfg.listeners[0].allow_anonymous == 0);
    CHECK(cfg.n_warnings == 1);
    config_free(&cfg);
    /* ... and with no listener at all, the local-only listeners get it */
    rc = load(&cfg, "per_listener_settings true\nallow_anonymous false\n", err, sizeof(err));
    CHECK(rc == 0);
    CHECK(cfg.local_only);
    CHECK(cfg.listeners[0].allow_anonymous == 0);
    config_free(&cfg);

    /* the deprecated default listener: port / bind_address, alongside explicit listeners */
    rc = load(&cfg, "port 1999\nbind_address 127.0.0.2\nlistener 2000\n", err, sizeof(err));
    CHECK(rc == 0);
    CHECK(cfg.n_listeners == 2);
    CHECK(cfg.listeners[0].port == 1999);
    CHECK_STR(cfg.listeners[0].address, "127.0.0.2");
    CHECK(cfg.listeners[1].port == 2000);
    CHECK(cfg.n_warnings == 2); /* port and bind_address are deprecated */
    config_free(&cfg);

    /* a per-listener option before any listener sets up the default listener on 1883 (Mosquitto) */
    rc = load(&cfg, "max_qos 1\n", err, sizeof(err));
    CHECK(rc == 0);
    CHECK(!cfg.local_only && cfg.n_listeners == 1);
    CHECK(cfg.listeners[0].port == 1883 && cfg.listeners[0].address == NULL && cfg.listeners[0].max_qos == 1);
    CHECK(cfg.allow_anonymous == 0);
    config_free(&cfg);

    /* a config file without listeners: local-only, anonymous allowed unless it says otherwise */
    rc = load(&cfg, "log_type all\n", err, sizeof(err));
    CHECK(rc == 0 && cfg.local_only && cfg.n_listeners == 2 && cfg.allow_anonymous == 1);
    config_free(&cfg);
    rc = load(&cfg, "allow_anonymous false\n", err, sizeof(err));
    CHECK(rc == 0 && cfg.local_only && cfg.allow_anonymous == 0 && cfg.listeners[0].allow_anonymous == 0);
    config_free(&cfg);
}

static void mkdir_p(const char *path)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
}

static void test_include_dir(void)
{
    char dir[300], dir2[300];
    snprintf(dir, sizeof(dir), "%s/conf.d", tmpdir);
    snprintf(dir2, sizeof(dir2), "%s/two.d", tmpdir);
    mkdir_p(dir);
    mkdir_p(dir2);
    /* mosquitto.conf(5): b.conf A.conf 01.conf a.conf B.conf 00.conf load as 00 01 A a B b */
    static const char *names[] = {"b.conf", "A.conf", "01.conf", "a.conf", "B.conf", "00.conf"};
    static const int ports[] = {6, 3, 2, 4, 5, 1};
    for (int i = 0; i < 6; i++) {
        char n[64], t[64];
        snprintf(n, sizeof(n), "conf.d/%s", names[i]);
        snprintf(t, sizeof(t), "listener %d\n", 1000 + ports[i]);
        write_file(n, t);
    }
    write_file("conf.d/ignored.txt", "this is not a config\n");
    write_file("conf.d/.conf", "neither is this\n");
    write_file("two.d/A.conf", "listener 1007\n");
    char text[1000];
    snprintf(text, sizeof(text), "allow_anonymous true\ninclude_dir %s\ninclude_dir %s/\n", dir, dir2);
    struct tombo_config cfg;
    char err[512];
    int rc = load(&cfg, text, err, sizeof(err));
    CHECK(rc == 0);
    if (rc)
        fprintf(stderr, "  err: %s\n", err);
    CHECK(cfg.n_listeners == 7);
    for (int i = 0; i < cfg.n_listeners && i < 7; i++)
        CHECK(cfg.listeners[i].port == 1001 + i);
    config_free(&cfg);

    /* an error in an included file names that file and its line; the main file's line after it too */
    write_file("two.d/B.conf", "\n\nmax_qos 7\n");
    rc = load(&cfg, text, err, sizeof(err));
    CHECK(rc == -1);
    char want[700];
    snprintf(want, sizeof(want), "%s/two.d/B.conf:3: 'max_qos' must be a number from 0 to 2, not 7", tmpdir);
    CHECK_STR(err, want);
    config_free(&cfg);
    snprintf(want, sizeof(want), "%s/two.d/B.conf", tmpdir);
    unlink(want);

    /* an empty directory (or one without *.conf) is fine */
    char empty[300];
    snprintf(empty, sizeof(empty), "%s/empty.d", tmpdir);
    mkdir_p(empty);
    snprintf(text, sizeof(text), "include_dir %s\n", empty);
    CHECK(load(&cfg, text, err, sizeof(err)) == 0 && cfg.local_only);
    config_free(&cfg);

    snprintf(text, sizeof(text), "include_dir %s/nonexistent.d\n", tmpdir);
    rc = load(&cfg, text, err, sizeof(err));
    CHECK(rc == -1);
    snprintf(want, sizeof(want), "%s/t.conf:1: cannot open include_dir '%s/nonexistent.d': No such file or directory",
             tmpdir, tmpdir);
    CHECK_STR(err, want);
    config_free(&cfg);
}

static void test_errors(void)
{
    static const struct { const char *text; const char *msg; } cases[] = {
        {"bogus_directive 1\n", "1: unknown directive 'bogus_directive'"},
        {"\n# c\nallow_anonymous true\nfoo\n", "4: unknown directive 'foo'"},
        {"connection bridge1\n", "1: bridge 'bridge1': this bridge has no 'address' line (the remote broker to connect to)"},
        {"topic a/# out 1\n", "1: 'topic' is a bridge setting: it needs a 'connection NAME' line before it"},
        {"connection b\naddress h\ntopic a/# both 1 l/ r/#\n", "3: 'topic' prefixes cannot contain the wildcards + or #"},
        {"connection b\naddress h\ntopic a\nbridge_require_ocsp true\n",
         "1: bridge 'b': TLS settings without bridge_cafile or bridge_capath (or bridge_identity/bridge_psk): this "
         "bridge does not use TLS; add them or remove the TLS lines"},
        {"mount_point x/#\n", "1: 'mount_point' x/#: a topic prefix cannot hold the wildcards + or #"},
        {"log_facility 8\n", "1: 'log_facility' must be a number from 0 to 7, not 8"},
        {"auth_opt_db x\n", "1: 'auth_opt_db' without a 'plugin' line before it"},
        {"plugin\n", "1: 'plugin' needs the path of a plugin (a .so file)"},
        {"plugin /x.so\nplugin_opt_k\n", "2: 'plugin_opt_k' needs a value"},
        {"plugin /x.so\nplugin_opt_ v\n", "2: 'plugin_opt_' needs a key after the prefix (plugin_opt_KEY VALUE)"},
        {"per_listener_settings true\nlistener 1884\nplugin /x.so\nlistener 1885\nplugin_opt_a b\n",
         "5: 'plugin_opt_a' without a 'plugin' line before it in this listener's section"},
        {"auth_plugin_deny_special_chars true\n",
         "1: 'auth_plugin_deny_special_chars' without a 'plugin' or 'auth_plugin' line before it"},
        {"auth_plugin /x.so\nauth_plugin_deny_special_chars maybe\n",
         "2: 'auth_plugin_deny_special_chars' must be true or false, not 'maybe'"},
        {"max_topic_alias 65536\n", "1: 'max_topic_alias' must be a number from 0 to 65535, not 65536"},
        {"socket_domain ipx\n", "1: 'socket_domain' must be ipv4 or ipv6, not 'ipx'"},
        {"listener 0 /tmp/sock\nbind_interface lo\n", "2: 'bind_interface' has no meaning on a Unix socket listener"},
        {"listener 8883\ntls_engine pkcs11\n",
         "2: tls_engine: not supported yet by tombo (keys in OpenSSL engines (hardware tokens) are not supported; "
         "give keyfile a PEM private key file)"},
        /* TLS settings that do not make sense together stop start-up at the line that is wrong */
        {"listener 8883\ncertfile /etc/ssl/server.pem\n", "2: certfile needs keyfile (the certificate's private key)"},
        {"listener 8883\nkeyfile /k.pem\n", "2: keyfile needs certfile (the certificate of that key)"},
        {"listener 8883\nrequire_certificate false\n",
         "2: this listener has no certfile/keyfile (nor psk_hint), so it is not a TLS listener; add them or remove "
         "this line"},
        {"listener 8883\ncertfile /c\nkeyfile /k\nrequire_certificate true\n",
         "4: require_certificate needs cafile or capath to verify client certificates with"},
        {"listener 8883\ncertfile /c\nkeyfile /k\nuse_identity_as_username true\n",
         "4: the username comes from the client certificate: set require_certificate true"},
        {"listener 8883\ncertfile /c\nkeyfile /k\ntls_version tlsv1.1\n",
         "4: tls_version must be tlsv1.2 or tlsv1.3 (TLS 1.1 and older are not offered)"},
        {"listener 8883\npsk_hint hint\n", "2: psk_hint needs psk_file (the identities and their keys)"},
        {"listener 8080\nhttp_dir /nonexistent/www\n", "2: 'http_dir' /nonexistent/www: No such file or directory"},
        {"listener 8080\nhttp_dir /\n", "1: http_dir needs protocol websockets on this listener (an MQTT listener "
                                           "serves no files)"},
        {"websockets_headers_size 70000\n", "1: 'websockets_headers_size' must be a number from 0 to 65536, not 70000"},
        {"check_retain_source maybe\n", "1: 'check_retain_source' must be true or false, not 'maybe'"},
        {"max_inflight_bytes x\n", "1: 'max_inflight_bytes' must be a number from 0 to 9223372036854775807, not 'x'"},
        {"autosave_interval -1\n", "1: 'autosave_interval' must be a number from 0 to 2147483647, not -1"},
        {"autosave_on_changes yes\n", "1: 'autosave_on_changes' must be true or false, not 'yes'"},
        {"allow_duplicate_messages 1\n", "1: 'allow_duplicate_messages' must be true or false, not '1'"},
        {"allow_anonymous yes\n", "1: 'allow_anonymous' must be true or false, not 'yes'"},
        {"allow_anonymous TRUE\n", "1: 'allow_anonymous' must be true or false, not 'TRUE'"},
        {"allow_anonymous\n", "1: 'allow_anonymous' needs a value"},
        {"set_tcp_nodelay true false\n", "1: 'set_tcp_nodelay': unexpected extra argument 'false'"},
        {"max_queued_messages abc\n", "1: 'max_queued_messages' must be a number from 0 to 2147483647, not 'abc'"},
        {"max_queued_messages 10abc\n", "1: 'max_queued_messages' must be a number from 0 to 2147483647, not '10abc'"},
        {"max_queued_messages -1\n", "1: 'max_queued_messages' must be a number from 0 to 2147483647, not -1"},
        {"max_queued_messages\n", "1: 'max_queued_messages' needs a value"},
        {"max_inflight_messages 70000\n", "1: 'max_inflight_messages' must be a number from 0 to 65535, not 70000"},
        {"max_keepalive 5\n", "1: 'max_keepalive' must be 0 (no limit) or a number from 10 to 65535, not 5"},
        {"max_packet_size 10\n", "1: 'max_packet_size' must be a number from 20 to 268435460, not 10"},
        {"message_size_limit 268435456\n",
         "1: 'message_size_limit' must be a number from 0 to 268435455, not 268435456"},
        {"sys_interval 99999999999999999999\n",
         "1: 'sys_interval' must be a number from 0 to 65535, not '99999999999999999999'"},
        {"max_qos 3\n", "1: 'max_qos' must be a number from 0 to 2, not 3"},
        {"max_connections -2\n", "1: 'max_connections' must be a number from -1 to 2147483647, not -2"},
        {"threads 0\n", "1: 'threads' must be a number from 1 to 1024, not 0"},
        {"listener\n", "1: 'listener' needs a port: listener PORT [ADDRESS]"},
        {"listener abc\n", "1: 'listener' port must be a number from 1 to 65535 (or 0 and a Unix socket path), not 'abc'"},
        {"listener 70000\n", "1: 'listener' port must be a number from 1 to 65535 (or 0 and a Unix socket path), not '70000'"},
        {"listener 0\n", "1: 'listener 0' needs the path of a Unix socket: listener 0 PATH"},
        {"listener 1883 127.0.0.1 extra\n", "1: 'listener': unexpected extra argument 'extra'"},
        {"port 0\n", "1: 'port' must be a number from 1 to 65535, not 0"},
        {"listener 1883\nprotocol foo\n", "2: 'protocol' must be mqtt or websockets, not 'foo'"},
        {"log_type info\n",
         "1: unknown log_type 'info' (expected error, warning, notice, information, debug, subscribe, unsubscribe, "
         "websockets, none or all)"},
        {"log_type\n", "1: 'log_type' needs a value"},
        {"log_dest foo\n", "1: unknown log_dest 'foo' (expected stdout, stderr, file PATH, syslog, topic, dlt or none)"},
        {"log_dest file\n", "1: 'log_dest file' needs a file name"},
        {"log_dest file a.log\nlog_dest file b.log\n", "2: only one 'log_dest file' may be configured"},
        {"persistent_client_expiration 5\n",
         "1: 'persistent_client_expiration' must be a positive number followed by h, d, w, m or y (e.g. 14d), not '5'"},
        {"persistent_client_expiration 14D\n",
         "1: 'persistent_client_expiration' must be a positive number followed by h, d, w, m or y (e.g. 14d), not '14D'"},
        {"persistent_client_expiration 0d\n",
         "1: 'persistent_client_expiration' must be a positive number followed by h, d, w, m or y (e.g. 14d), not '0d'"},
        {"persistent_client_expiration 1000y\n", "1: 'persistent_client_expiration' 1000y is too long (at most about 136 years)"},
        {"password_file\n", "1: 'password_file' needs a value"},
        {"password_file   \n", "1: 'password_file' needs a value"},
        {"include_dir\n", "1: 'include_dir' needs a directory"},
        {"allow_anonymous true\nper_listener_settings true\n",
         "2: per_listener_settings must be set before any other security settings"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tombo_config cfg;
        char err[512];
        int rc = load(&cfg, cases[i].text, err, sizeof(err));
        char want[1024];
        snprintf(want, sizeof(want), "%s/t.conf:%s", tmpdir, cases[i].msg);
        CHECK(rc == -1);
        CHECK_STR(err, want);
        config_free(&cfg);
    }

    struct tombo_config cfg;
    char err[512], want[600];
    config_init(&cfg);
    snprintf(want, sizeof(want), "%s/missing.conf", tmpdir);
    CHECK(config_load(&cfg, want, err, sizeof(err)) == -1);
    snprintf(want, sizeof(want), "%s/missing.conf: cannot open config file: No such file or directory", tmpdir);
    CHECK_STR(err, want);
    config_free(&cfg);

    /* a NUL byte inside a line */
    snprintf(want, sizeof(want), "%s/nul.conf", tmpdir);
    FILE *f = fopen(want, "w");
    fwrite("log_type all\nallow\0_anonymous true\n", 1, 35, f);
    fclose(f);
    config_init(&cfg);
    CHECK(config_load(&cfg, want, err, sizeof(err)) == -1);
    strcat(want, ":2: NUL byte in line");
    CHECK_STR(err, want);
    config_free(&cfg);
}

static int run_args(struct tombo_config *cfg, char *err, size_t errlen, int argc, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    argv[0] = "tombo";
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    argv[argc] = NULL;
    va_end(ap);
    config_init(cfg);
    err[0] = '\0';
    return config_args(cfg, argc, argv, err, errlen);
}

static void test_command_line(void)
{
    struct tombo_config cfg;
    char err[512];
    char conf[512];
    snprintf(conf, sizeof(conf), "%s", write_file("cl.conf", "listener 1900 127.0.0.1\nallow_anonymous true\n"));

    CHECK(run_args(&cfg, err, sizeof(err), 3, "-c", conf) == 0);
    CHECK_STR(cfg.config_file, conf);
    CHECK(cfg.n_listeners == 1 && cfg.listeners[0].port == 1900 && cfg.allow_anonymous == 1);
    CHECK(cfg.log_type == TLOG_DEFAULT);
    config_free(&cfg);

    CHECK(run_args(&cfg, err, sizeof(err), 4, "-v", "--config-file", conf) == 0);
    CHECK(cfg.log_type == TLOG_ALL);
    config_free(&cfg);

    /* -v overrides log_type from the file */
    snprintf(conf, sizeof(conf), "%s", write_file("v.conf", "log_type error\n"));
    CHECK(run_args(&cfg, err, sizeof(err), 4, "-c", conf, "--verbose") == 0);
    CHECK(cfg.log_type == TLOG_ALL);
    config_free(&cfg);

    /* -p with no config: local only on that port */
    CHECK(run_args(&cfg, err, sizeof(err), 3, "-p", "1999") == 0);
    CHECK(cfg.local_only && cfg.n_listeners == 2);
    CHECK(cfg.listeners[0].port == 1999 && cfg.listeners[1].port == 1999);
    CHECK_STR(cfg.listeners[0].address, "127.0.0.1");
    CHECK(cfg.allow_anonymous == 1);
    config_free(&cfg);

    /* two -p: both ports */
    CHECK(run_args(&cfg, err, sizeof(err), 5, "-p", "1999", "--port", "2001") == 0);
    CHECK(cfg.n_listeners == 4 && cfg.listeners[2].port == 2001);
    config_free(&cfg);

    /* -p replaces the port of the default listener */
    snprintf(conf, sizeof(conf), "%s", write_file("p.conf", "port 1950\nbind_address 127.0.0.1\n"));
    CHECK(run_args(&cfg, err, sizeof(err), 5, "-p", "1960", "-c", conf) == 0);
    CHECK(!cfg.local_only && cfg.n_listeners == 1 && cfg.listeners[0].port == 1960);
    CHECK_STR(cfg.listeners[0].address, "127.0.0.1");
    config_free(&cfg);

    /* -p with explicit listeners: ignored with a warning, as Mosquitto 2.0 ignores it */
    snprintf(conf, sizeof(conf), "%s", write_file("cl.conf", "listener 1900 127.0.0.1\n"));
    CHECK(run_args(&cfg, err, sizeof(err), 5, "-c", conf, "-p", "1960") == 0);
    CHECK(cfg.n_listeners == 1 && cfg.listeners[0].port == 1900);
    bool warned = false;
    for (int i = 0; i < cfg.n_warnings; i++)
        warned |= strstr(cfg.warnings[i], "-p ignored") != NULL;
    CHECK(warned);
    config_free(&cfg);

    /* -d / --daemon: run in the background (main.c does it) */
    CHECK(run_args(&cfg, err, sizeof(err), 2, "-d") == 0);
    CHECK(cfg.daemon);
    config_free(&cfg);
    CHECK(run_args(&cfg, err, sizeof(err), 2, "--daemon") == 0);
    CHECK(cfg.daemon);
    config_free(&cfg);

    /* help and version: 1 (exit 0); their text goes to stdout */
    fflush(stdout);
    int saved = dup(1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    CHECK(run_args(&cfg, err, sizeof(err), 2, "-h") == 1);
    config_free(&cfg);
    CHECK(run_args(&cfg, err, sizeof(err), 2, "--help") == 1);
    config_free(&cfg);
    CHECK(run_args(&cfg, err, sizeof(err), 2, "--version") == 1);
    config_free(&cfg);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(devnull);

    CHECK(run_args(&cfg, err, sizeof(err), 2, "-x") == -1);
    CHECK_STR(err, "unknown option '-x' (tombo -h for help)");
    config_free(&cfg);
    CHECK(run_args(&cfg, err, sizeof(err), 2, "-c") == -1);
    CHECK_STR(err, "-c argument given, but no config file specified");
    config_free(&cfg);
    CHECK(run_args(&cfg, err, sizeof(err), 2, "-p") == -1);
    CHECK_STR(err, "-p argument given, but no port specified");
    config_free(&cfg);
    CHECK(run_args(&cfg, err, sizeof(err), 3, "-p", "0") == -1);
    CHECK_STR(err, "invalid port '0' (expected 1 to 65535)");
    config_free(&cfg);
    CHECK(run_args(&cfg, err, sizeof(err), 3, "-p", "80x") == -1);
    CHECK_STR(err, "invalid port '80x' (expected 1 to 65535)");
    config_free(&cfg);
    snprintf(conf, sizeof(conf), "%s/none.conf", tmpdir);
    CHECK(run_args(&cfg, err, sizeof(err), 3, "-c", conf) == -1);
    CHECK(strstr(err, "none.conf: cannot open config file: No such file or directory") != NULL);
    config_free(&cfg);
    snprintf(conf, sizeof(conf), "%s", write_file("bad.conf", "listener 1883\nmax_qos 9\n"));
    CHECK(run_args(&cfg, err, sizeof(err), 3, "-c", conf) == -1);
    CHECK(strstr(err, "bad.conf:2: 'max_qos' must be a number from 0 to 2, not 9") != NULL);
    config_free(&cfg);
}

/* The shipped config files parse and mean what they say. */
static void test_shipped_configs(void)
{
    char root[512];
    snprintf(root, sizeof(root), "%s", __FILE__);
    char *slash = strstr(root, "/tests/unit/");
    if (!slash) {
        fprintf(stderr, "skip shipped configs: source path unknown\n");
        return;
    }
    *slash = '\0';
    char path[700], err[512];
    struct tombo_config cfg;

    snprintf(path, sizeof(path), "%s/conf/mosquitto-tutorial.conf", root);
    config_init(&cfg);
    CHECK(config_load(&cfg, path, err, sizeof(err)) == 0);
    CHECK(cfg.set_tcp_nodelay && cfg.allow_anonymous == 1 && cfg.max_queued_messages == 0);
    CHECK(cfg.n_listeners == 1 && cfg.listeners[0].port == 1883 && cfg.listeners[0].address == NULL);
    config_free(&cfg);

    snprintf(path, sizeof(path), "%s/conf/tombo.conf", root);
    config_init(&cfg);
    CHECK(config_load(&cfg, path, err, sizeof(err)) == 0);
    CHECK(cfg.n_listeners == 1 && cfg.listeners[0].port == 1883);
    CHECK_STR(cfg.listeners[0].address, "127.0.0.1");
    CHECK(cfg.allow_anonymous == 1 && cfg.persistence);
    CHECK_STR(cfg.persistence_location, "data/");
    char db[256];
    CHECK(config_persistence_path(&cfg, db, sizeof(db)) == 0);
    CHECK_STR(db, "data/tombo.db");
    config_free(&cfg);
}

/* ---- log ----------------------------------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 22);
    size_t n = fread(buf, 1, (1 << 22) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const char *log_path(void)
{
    static char p[300];
    snprintf(p, sizeof(p), "%s/broker.log", tmpdir);
    return p;
}

static void log_with(const char *conf_text)
{
    struct tombo_config cfg;
    char err[512];
    char text[1024];
    snprintf(text, sizeof(text), "listener 1883\nlog_dest file %s\n%s", log_path(), conf_text);
    CHECK(load(&cfg, text, err, sizeof(err)) == 0);
    unlink(log_path());
    CHECK(log_init(&cfg) == 0);
    config_free(&cfg);
}

static void test_log_format(void)
{
    log_with("listener 1883\nlog_type error\nlog_type warning\nlog_type subscribe\n");
    CHECK(log_enabled(TLOG_ERR) && log_enabled(TLOG_WARNING) && log_enabled(TLOG_SUBSCRIBE));
    CHECK(!log_enabled(TLOG_INFO) && !log_enabled(TLOG_DEBUG) && !log_enabled(TLOG_NOTICE));
    time_t before = time(NULL);
    log_printf(TLOG_ERR, "error %d", 1);
    log_printf(TLOG_INFO, "not logged %s", "x");
    log_printf(TLOG_SUBSCRIBE, "sub %s", "a/b");
    int evaluated = 0;
    TLOG(TLOG_DEBUG, "debug %d", ++evaluated);
    CHECK(evaluated == 0);
    time_t after = time(NULL);
    char *text = slurp(log_path());
    CHECK(text != NULL);
    long long t1 = 0, t2 = 0;
    char m1[64], m2[64];
    CHECK(text && sscanf(text, "%lld: error %63s\n%lld: sub %63s\n", &t1, m1, &t2, m2) == 4);
    CHECK(t1 >= before && t1 <= after && t2 >= before && t2 <= after);
    CHECK(text && strstr(text, "not logged") == NULL);
    int newlines = 0;
    for (const char *c = text ? text : ""; *c; c++)
        newlines += *c == '\n';
    CHECK(newlines == 2);
    free(text);

    /* timestamps off, and a strftime format */
    log_with("log_timestamp false\n");
    log_printf(TLOG_NOTICE, "plain line");
    text = slurp(log_path());
    CHECK_STR(text, "plain line\n");
    free(text);

    log_with("log_timestamp_format %Y-%m-%dT%H:%M:%S\n");
    log_printf(TLOG_WARNING, "formatted");
    text = slurp(log_path());
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    char word[32];
    CHECK(text && sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d: %31s", &y, &mo, &d, &h, &mi, &s, word) == 7);
    CHECK(text && !strcmp(word, "formatted"));
    free(text);

    /* a line longer than the stack buffer is still whole */
    log_with("log_timestamp false\n");
    char *big = malloc(5001);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    log_printf(TLOG_ERR, "%s", big);
    text = slurp(log_path());
    CHECK(text && strlen(text) == 5001 && text[5000] == '\n' && !strncmp(text, big, 5000));
    free(text);
    free(big);

    /* -v: everything */
    struct tombo_config cfg;
    char err[256], conf[512];
    snprintf(conf, sizeof(conf), "%s", write_file("lv.conf", "log_dest none\n"));
    CHECK(run_args(&cfg, err, sizeof(err), 4, "-c", conf, "-v") == 0);
    CHECK(log_init(&cfg) == 0);
    CHECK(log_enabled(TLOG_DEBUG) && log_enabled(TLOG_WEBSOCKETS));
    log_printf(TLOG_DEBUG, "to nowhere");
    config_free(&cfg);

    /* config warnings are logged by log_init */
    log_with("port 1999\n");
    text = slurp(log_path());
    CHECK(text && strstr(text, "'port' is deprecated in Mosquitto: use 'listener 1999'") != NULL);
    free(text);

    /* log file that cannot be opened */
    snprintf(conf, sizeof(conf), "log_dest file %s/no/such/dir/x.log\n", tmpdir);
    CHECK(load(&cfg, conf, err, sizeof(err)) == 0);
    int saved = dup(2);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    CHECK(log_init(&cfg) == -1);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    config_free(&cfg);
    log_close();
}

/* log_dest topic: the hook sees every non-debug line, as logged. */
static int hook_calls;
static char hook_last[128];
static unsigned hook_level;
static void topic_hook(unsigned level, const char *msg, size_t len, void *ud)
{
    (void)ud;
    hook_calls++;
    hook_level = level;
    snprintf(hook_last, sizeof(hook_last), "%.*s", (int)len, msg);
    log_printf(TLOG_ERR, "from the hook: not re-published");
}

static void test_log_topic(void)
{
    /* `log_dest topic` with no timestamp, and the hook installed by hand (the broker's is
     * log_topic.c, which needs a worker to publish). */
    struct tombo_config cfg;
    char err[512];
    CHECK(load(&cfg, "listener 1883\nlog_type all\nlog_dest topic\nlog_timestamp false\n", err, sizeof(err)) == 0);
    CHECK(cfg.log_dest == TLOG_DEST_TOPIC);
    CHECK(log_init(&cfg) == 0);
    config_free(&cfg);
    log_set_topic_hook(topic_hook, NULL);
    log_printf(TLOG_NOTICE, "client %s connected", "c1");
    log_printf(TLOG_DEBUG, "debug never on topics");
    CHECK(hook_calls == 1);
    CHECK_STR(hook_last, "client c1 connected");
    CHECK(hook_level == TLOG_NOTICE);
    CHECK_STR(log_level_letter(TLOG_ERR), "E");
    CHECK_STR(log_level_letter(TLOG_SUBSCRIBE), "M");
    log_set_topic_hook(NULL, NULL);
    log_close();
}

#define LOG_THREADS 4
#define LOG_LINES 2000
static void *log_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < LOG_LINES; i++)
        log_printf(TLOG_NOTICE, "thread %d line %d %s", id, i,
                   "padding-padding-padding-padding-padding-padding-padding-padding-padding");
    return NULL;
}

static void test_log_threads(void)
{
    log_with("");
    pthread_t t[LOG_THREADS];
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_create(&t[i], NULL, log_worker, (void *)(intptr_t)i);
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(t[i], NULL);
    char *text = slurp(log_path());
    CHECK(text != NULL);
    int seen[LOG_THREADS] = {0};
    int lines = 0, bad = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        long long ts;
        int id, n;
        char pad[100];
        if (sscanf(l, "%lld: thread %d line %d %99s", &ts, &id, &n, pad) != 4 || id < 0 || id >= LOG_THREADS ||
            n != seen[id] || strcmp(pad, "padding-padding-padding-padding-padding-padding-padding-padding-padding")) {
            bad++;
            continue;
        }
        seen[id]++;
        lines++;
    }
    CHECK(bad == 0);
    CHECK(lines == LOG_THREADS * LOG_LINES);
    free(text);
    log_close();
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[1024];
            snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* A bridge section with Mosquitto's syntax: every field, the defaults that depend on others, and
 * the topic lines' prefixes joined with their patterns. */
static void test_bridge_section(void)
{
    struct tombo_config cfg;
    char err[512];
    int rc = load(&cfg,
                  "listener 1883\n"
                  "connection cloud\n"
                  "address a.example:1884 [::1]:1885 10.0.0.1\n"
                  "topic sensors/# out 1 site/ cloud/\n"
                  "topic # both\n"
                  "topic \"\" in 2 local/x remote/y\n"
                  "remote_username u\nremote_password p\n"
                  "restart_timeout 3\nstart_type lazy\nthreshold 4\nbridge_protocol_version mqttv50\n"
                  "try_private false\nnotifications false\nkeepalive_interval 20\ncleansession true\n"
                  "connection two\naddress h\ntopic t\nremote_clientid r2\n",
                  err, sizeof(err));
    CHECK(rc == 0);
    CHECK_STR(err, "");
    CHECK(cfg.n_bridges == 2);
    const struct tombo_bridge *b = &cfg.bridges[0];
    CHECK_STR(b->name, "cloud");
    CHECK(b->n_addrs == 3);
    CHECK_STR(b->addrs[0].host, "a.example");
    CHECK(b->addrs[0].port == 1884);
    CHECK_STR(b->addrs[1].host, "::1");
    CHECK(b->addrs[1].port == 1885);
    CHECK(b->addrs[2].port == 1883);
    CHECK(b->n_topics == 3);
    CHECK_STR(b->topics[0].local_topic, "site/sensors/#");
    CHECK_STR(b->topics[0].remote_topic, "cloud/sensors/#");
    CHECK(b->topics[0].dir == BRIDGE_OUT && b->topics[0].qos == 1);
    CHECK_STR(b->topics[1].local_topic, "#");
    CHECK(b->topics[1].dir == BRIDGE_BOTH && b->topics[1].qos == 0);
    CHECK_STR(b->topics[2].local_topic, "local/x");
    CHECK_STR(b->topics[2].remote_topic, "remote/y");
    CHECK(b->topics[2].dir == BRIDGE_IN && b->topics[2].qos == 2);
    CHECK(b->restart_base == 3 && b->restart_cap == 0);
    CHECK(b->start_type == BRIDGE_LAZY && b->threshold == 4 && b->idle_timeout == 60);
    CHECK(b->protocol_version == 5 && !b->try_private && !b->notifications && b->keepalive == 20);
    CHECK(b->cleansession && b->local_cleansession == 1);
    CHECK(strncmp(b->local_clientid, "local.", 6) == 0);
    CHECK(strstr(b->remote_clientid, ".cloud") != NULL);
    b = &cfg.bridges[1];
    CHECK_STR(b->remote_clientid, "r2");
    CHECK_STR(b->local_clientid, "local.r2");
    CHECK_STR(b->notification_topic, "$SYS/broker/connection/r2/state");
    CHECK(b->restart_base == 5 && b->restart_cap == 30 && b->protocol_version == 4 && b->try_private);
    CHECK(!b->cleansession && b->local_cleansession == 0);
    config_free(&cfg);
}

/* plugin / auth_plugin lines with their plugin_opt_ / auth_opt_ options, in order; per listener with
 * per_listener_settings true (the default listener's go with it into the listener it becomes). */
static void test_plugins(void)
{
    struct tombo_config cfg;
    char err[512];
    CHECK(load(&cfg, "listener 1883\nplugin /a.so\nplugin_opt_x 1 2\nauth_opt_y z\nauth_plugin /b.so\n", err,
               sizeof(err)) == 0);
    CHECK(cfg.n_plugins == 2 && cfg.listeners[0].n_plugins == 0);
    CHECK_STR(cfg.plugins[0].path, "/a.so");
    CHECK(cfg.plugins[0].n_opts == 2 && cfg.plugins[1].n_opts == 0);
    CHECK_STR(cfg.plugins[0].keys[0], "x");
    CHECK_STR(cfg.plugins[0].values[0], "1 2");
    CHECK_STR(cfg.plugins[0].keys[1], "y");
    CHECK_STR(cfg.plugins[0].values[1], "z");
    CHECK_STR(cfg.plugins[1].path, "/b.so");
    char want[300];
    snprintf(want, sizeof(want), "%s/t.conf:5", tmpdir);
    CHECK_STR(cfg.plugins[1].where, want);
    config_free(&cfg);

    CHECK(load(&cfg, "per_listener_settings true\nlistener 1883\nplugin /a.so\nplugin_opt_k v\nlistener 1884\n",
               err, sizeof(err)) == 0);
    CHECK(cfg.n_plugins == 0 && cfg.n_listeners == 2);
    CHECK(cfg.listeners[0].n_plugins == 1 && cfg.listeners[1].n_plugins == 0);
    CHECK_STR(cfg.listeners[0].plugins[0].values[0], "v");
    config_free(&cfg);

    CHECK(load(&cfg, "per_listener_settings true\nport 1883\nplugin /a.so\nplugin_opt_k v\n", err, sizeof(err)) == 0);
    CHECK(cfg.n_listeners == 1 && cfg.listeners[0].n_plugins == 1 && cfg.listeners[0].plugins[0].n_opts == 1);
    config_free(&cfg);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tombo-config-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults_no_config();
    test_every_directive();
    test_syntax();
    test_listener_blocks();
    test_include_dir();
    test_errors();
    test_command_line();
    test_shipped_configs();
    test_log_format();
    test_log_topic();
    test_log_threads();
    test_bridge_section();
    test_plugins();
    rm_rf(tmpdir);
    UNIT_DONE();
}
