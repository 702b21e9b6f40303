/* auth.h -- authentication (password_file) and authorisation (acl_file) with Mosquitto 2.0's file
 * formats and meaning, so a mosquitto.conf with its password and ACL files works unchanged.
 *
 * Design: auth_load() reads both files into an immutable set of users and rules; every check is a
 * read-only function of it, with no allocation in the common case (ACL patterns that expand to more
 * than 256 bytes use a temporary heap buffer). One auth_t serves one set of security settings: one
 * per listener when per_listener_settings is true, otherwise one for the whole broker. SIGHUP reads
 * the files again (auth_reload, or auth_reload_files when the config names other files) and swaps
 * the new set in; the auth_t pointer itself never changes, so sessions and connections keep theirs.
 *
 * Thread-safety: auth_connect() and auth_acl() may be called from any number of threads at once
 * (they hold a read lock on the current set); auth_reload() from any thread. Ownership: the caller
 * owns the auth_t and frees it with auth_free(); auth_load() copies what it needs from its
 * arguments.
 *
 * Cost: auth_connect() with a $7$ hash runs PBKDF2-HMAC-SHA512 with the file's iteration count (101
 * from mosquitto_passwd: about 0.1 ms), once per CONNECT carrying a user name: the broker runs it
 * on its auth thread (authq.h). auth_acl() is a handful of topic matches: per PUBLISH and per
 * delivery. */
#ifndef TOMBO_BROKER_AUTH_H
#define TOMBO_BROKER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct auth auth_t;

/* Load the password file and the ACL file (either may be NULL: none). Returns a new auth_t, or NULL
 * with "FILE:LINE: message" (or "FILE: message" when the file cannot be read) in err.
 *
 * Password file (mosquitto_passwd's): `username:HASH` per line, HASH "$7$..." or "$6$..." (see
 * pwhash.h); blanks around both are trimmed. As in Mosquitto 2.0.11, lines starting with '#' and
 * lines without ':' are skipped, and an entry whose hash cannot be decoded (a plain-text password,
 * a missing hash) is dropped with a warning (the user cannot log in) rather than failing the load;
 * only an unreadable file is an error. For a user listed twice, the first valid entry counts.
 *
 * ACL file: `user NAME`, `topic [read|write|readwrite|deny] TOPIC` and `pattern [ACCESS] TOPIC`
 * lines; no ACCESS means readwrite; '#' lines and blank lines are skipped. Unknown keywords, a
 * missing user name or topic, an unknown access word and an invalid topic filter are errors, as in
 * Mosquitto. tombo also accepts leading blanks and tabs between words (Mosquitto refuses both). */
auth_t *auth_load(const char *password_file, const char *acl_file, char *err, size_t errlen);

void auth_free(auth_t *a);

/* Read the same files again (SIGHUP). On success the new users and rules apply to every check from
 * now on, including connected clients' ACL checks, and 0 is returned; on error (err as for
 * auth_load) the previous ones stay in force and -1 is returned. a == NULL: nothing to do. */
int auth_reload(auth_t *a, char *err, size_t errlen);
/* The same from other files (either may be NULL: none): a reload whose config names new ones. On
 * success they are the files later auth_reload() calls read. Call from one thread at a time. */
int auth_reload_files(auth_t *a, const char *password_file, const char *acl_file, char *err, size_t errlen);
/* The files in force (NULL: none); for the reloading thread. */
const char *auth_password_file(const auth_t *a);
const char *auth_acl_file(const auth_t *a);

/* Non-fatal problems found by auth_load() or the last auth_reload() ("FILE:LINE: message"), for the
 * broker's log: i from 0 while it returns non-NULL. Valid until the next reload. */
const char *auth_warning(const auth_t *a, int i);

/* Was a password file / an ACL file loaded? (a may be NULL: no.) With no ACL file (and no plugin
 * with an ACL callback: auth_has_acl says true then) the broker can skip auth_acl() entirely: it
 * would allow everything. */
bool auth_has_password_file(const auth_t *a);
bool auth_has_acl(const auth_t *a);

/* CONNECT: MQTT_RC_SUCCESS or MQTT_RC_NOT_AUTHORIZED (0x87; CONNACK return code 5 on MQTT 3.x),
 * with Mosquitto 2.0.11's rules (checked against it by tests/broker/test_auth.py):
 *   - no password file (a NULL or loaded without one): everyone is accepted if allow_anonymous,
 *     nobody otherwise, whatever the user name;
 *   - password file, no user name: accepted iff allow_anonymous (a password alone, legal in MQTT 5,
 *     is ignored);
 *   - password file and a user name: the user must be in the file and the password must match;
 *     a missing password refuses; allow_anonymous does not matter.
 * A zero-length user name or password counts as absent, as in Mosquitto (a CONNECT with user name
 * "" is an anonymous client).
 * Mosquitto 2.0 answers 5 / 0x87 (not 4 / 0x86 "bad user name or password") for every one of
 * these refusals, so tombo does too. user / pw are the CONNECT's bytes (not NUL-terminated).
 * Unknown users cost a hash computation like known ones, so timing does not reveal user names. */
uint8_t auth_connect(const auth_t *a, bool allow_anonymous, const uint8_t *user, size_t ulen, bool has_user,
                     const uint8_t *pw, size_t pwlen, bool has_pw);

/* The same with the plugins of a (auth_set_plugins) asked first, MOSQ_EVT_BASIC_AUTH with Mosquitto
 * 2.0's rules: the first plugin that does not defer decides (success still needs allow_anonymous
 * for a client without user name); when all defer, the rules above. client: what the plugins may
 * ask about the client (mosquitto_client_id, ...), or NULL; a new user name a plugin set
 * (mosquitto_set_username) comes back in client->set_username (the caller's to free) with
 * client->username_changed. A plugin may block: with plugins, call
 * it off the workers (auth_needs_thread). */
struct mosquitto;
uint8_t auth_connect_client(const auth_t *a, bool allow_anonymous, struct mosquitto *client,
                            const uint8_t *user, size_t ulen, bool has_user, const uint8_t *pw, size_t pwlen,
                            bool has_pw);
/* Whether auth_connect_client() for these credentials may be slow: a password to hash, or a plugin
 * to ask (any client, with or without user name). */
bool auth_needs_thread(const auth_t *a, bool has_user, size_t ulen);

/* The Mosquitto plugins of this set of security settings (plugin.h): a takes ownership and frees
 * them with itself. Call before the workers start. */
struct plugin_set;
void auth_set_plugins(auth_t *a, struct plugin_set *ps);
struct plugin_set *auth_plugins(const auth_t *a);

struct scram_verifier;
/* MQTT 5 enhanced authentication, SCRAM-SHA-256 (handle_auth.c): the verifier of `user` (ulen
 * bytes) from a `$SCRAM-SHA-256$` entry of the password file, and true. Otherwise false, and v is
 * a decoy (a salt derived from the name with a random key, so it is the same on every attempt;
 * keys that match no proof), so the exchange goes on and fails only at the proof, as a wrong
 * password does (RFC 5802 section 9); *has_other tells the log that the user exists with another
 * hash type. Cheap (no key stretching): runs on the worker. a must be non-NULL. */
bool auth_scram_lookup(const auth_t *a, const char *user, size_t ulen, struct scram_verifier *v, bool *has_other);

/* Access kinds for auth_acl(). */
enum { AUTH_READ = 1, AUTH_WRITE = 2, AUTH_SUBSCRIBE = 4, AUTH_UNSUBSCRIBE = 8 };
/* AUTH_UNSUBSCRIBE (auth_acl_msg only): plugins are asked (MOSQ_ACL_UNSUBSCRIBE); acl_file allows
 * every UNSUBSCRIBE, as Mosquitto's does. */

/* May this client do `access` on `topic` (n bytes, a topic name for READ/WRITE)?
 *   AUTH_WRITE: a PUBLISH it sends, and its will message when it is published;
 *   AUTH_READ: each message about to be delivered to it (incl. retained ones on SUBSCRIBE);
 *   AUTH_SUBSCRIBE: a SUBSCRIBE filter (topic = the filter): true when some rule that may apply to
 *     the client grants READ on a topic the filter can match, false when no topic it matches could
 *     ever be delivered. Mosquitto 2.0's acl_file grants every SUBSCRIBE and delivers nothing; tombo
 *     refuses such a filter in the SUBACK (0x80 / 0x87), as Mosquitto's dynamic-security plugin and
 *     the paho interoperability suite's "subscribe failure" test do. Deny rules are not consulted
 *     (a filter partly readable is granted; READ still filters every delivery).
 * Rules (Mosquitto 2.0's acl_file): no ACL file: allowed. Otherwise default deny, then
 *   1. the client's own rules: the `user NAME` section equal to username, or for a client without
 *      user name (username NULL) the `topic` lines before the first `user` line. A matching `deny`
 *      rule denies; else a matching rule granting the access allows.
 *   2. if the file has patterns: a username or client_id containing '+' or '#' is denied; else
 *      each `pattern`, with %c replaced by client_id and %u by username (patterns with %u are
 *      skipped for clients without user name): a matching deny denies, a match granting allows.
 * username "" is taken as NULL (see auth_connect). A topic starting with '$' is matched only by ACL topics starting with '$'. client_id must be
 * NUL-terminated and non-NULL. The broker's own $ rules (no PUBLISH to $SYS, ...) are not here. */
bool auth_acl(const auth_t *a, const char *client_id, const char *username, const uint8_t *topic, size_t n,
              int access);

/* The message an ACL check is about, for plugins (MOSQ_EVT_ACL_CHECK carries it). */
typedef struct auth_msg {
    const void *payload;
    uint32_t payloadlen;
    uint8_t qos;
    bool retain;
} auth_msg_t;
/* auth_acl with the plugins asked first (Mosquitto 2.0's mosquitto_acl_check): the first plugin
 * that does not defer decides; all deferring, the ACL file decides, or with no ACL file the access
 * is denied. Without plugins with an ACL callback, auth_acl exactly. msg may be NULL. Plugins are
 * called on the calling thread, under each plugin's own mutex (plugin.h). */
bool auth_acl_msg(const auth_t *a, const char *client_id, const char *username, const uint8_t *topic, size_t n,
                  int access, const auth_msg_t *msg);

#endif
