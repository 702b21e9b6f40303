/* auth.c -- password_file and acl_file: Mosquitto 2.0's formats and rules (see auth.h).
 *
 * Design note. Both files are parsed once into flat arrays. Users of the password file keep file
 * order (the first valid entry for a name wins, as in Mosquitto). ACL rules are grouped by owner:
 * the anonymous section, one section per user name (sorted, found by binary search on every
 * check) and the patterns; within each group, deny rules are kept apart from granting rules
 * because Mosquitto puts denials first: any matching deny wins over any grant of the same group.
 * A loaded set is never mutated: SIGHUP loads a new one and swaps it in (auth_reload), checks read
 * it under a read lock. */
#include "broker/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/plugin.h"
#include "mqtt/mqtt.h"
#include "mqtt/topic.h"
#include "pwhash/pwhash.h"
#include "pwhash/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

struct pw_user {
    char *name;
    size_t len;
    struct pwhash hash;
};

struct acl_rule {
    char *topic; /* a valid topic filter; for patterns, before %c / %u substitution */
    size_t len;
    int access;        /* AUTH_READ | AUTH_WRITE, or 0 for deny */
    unsigned n_c, n_u; /* patterns: how many %c and %u it holds */
};

struct acl_rules {
    struct acl_rule *deny, *grant;
    size_t n_deny, n_grant, cap_deny, cap_grant;
};

struct acl_user {
    char *name;
    struct acl_rules rules;
};

/* What the two files say: immutable once loaded; a reload builds a new one. */
struct auth_data {
    bool has_pwfile;
    struct pw_user *users;
    size_t n_users;

    bool has_acl;
    bool has_anon;           /* some `topic` line came before the first `user` line */
    struct acl_rules anon;   /* clients without user name */
    struct acl_user *acl_users; /* sorted by name after loading */
    size_t n_acl_users;
    struct acl_rules patterns;

    char **warnings;
    int n_warnings;
};

/* The files' paths and their current contents. Checks read `d` under the read lock; SIGHUP's
 * auth_reload swaps in a freshly loaded one under the write lock (the files change rarely). */
struct auth {
    pthread_rwlock_t lock;
    struct auth_data *d;
    char *pw_path, *acl_path; /* the reloading thread's only */
    atomic_bool has_pwfile, has_acl; /* a file is configured (a reload may add or remove one) */
    uint8_t decoy_key[32];    /* random: the salts SCRAM shows for users it does not have */
    plugin_set_t *plugins;    /* set before the workers start, then read-only; owned */
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "tombo: out of memory\n");
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

static void add_warning(struct auth_data *a, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    a->warnings = xrealloc(a->warnings, sizeof(char *) * (size_t)(a->n_warnings + 1));
    a->warnings[a->n_warnings++] = xstrdup(buf);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trim blanks at both ends in place; returns the new start. */
static char *trim(char *s)
{
    while (is_blank(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* ---------------------------------------------------------------- password file */

static int load_pwfile(struct auth_data *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: unable to open password file: %s", path, strerror(errno));
        return -1;
    }
    a->has_pwfile = true;
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        if (line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *name = trim(line), *hash = colon + 1;
        /* Only the field up to a further ':' is the hash (Mosquitto splits on ':'). */
        char *c2 = strchr(hash, ':');
        if (c2)
            *c2 = '\0';
        hash = trim(hash);
        if (!*name) {
            add_warning(a, "%s:%u: empty user name, line ignored", path, lineno);
            continue;
        }
        if (strlen(name) > 65535) {
            add_warning(a, "%s:%u: user name too long, line ignored", path, lineno);
            continue;
        }
        struct pwhash h;
        const char *why = "missing password hash";
        if (!*hash || pwhash_decode(&h, hash, &why) != 0) {
            add_warning(a, "%s:%u: %s for user %s, entry ignored (the user cannot log in)", path, lineno, why,
                        name);
            continue;
        }
        a->users = xrealloc(a->users, sizeof(*a->users) * (a->n_users + 1));
        struct pw_user *u = &a->users[a->n_users++];
        u->name = xstrdup(name);
        u->len = strlen(name);
        u->hash = h;
    }
    free(line);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- ACL file */

static void rules_add(struct acl_rules *r, const char *topic, int access)
{
    struct acl_rule **arr = access ? &r->grant : &r->deny;
    size_t *n = access ? &r->n_grant : &r->n_deny, *cap = access ? &r->cap_grant : &r->cap_deny;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        *arr = xrealloc(*arr, sizeof(**arr) * *cap);
    }
    struct acl_rule *rule = &(*arr)[(*n)++];
    rule->topic = xstrdup(topic);
    rule->len = strlen(topic);
    rule->access = access;
    rule->n_c = rule->n_u = 0;
    for (size_t i = 0; i + 1 < rule->len; i++) {
        if (topic[i] == '%' && topic[i + 1] == 'c')
            rule->n_c++, i++;
        else if (topic[i] == '%' && topic[i + 1] == 'u')
            rule->n_u++, i++;
    }
}

static void rules_free(struct acl_rules *r)
{
    for (size_t i = 0; i < r->n_deny; i++)
        free(r->deny[i].topic);
    for (size_t i = 0; i < r->n_grant; i++)
        free(r->grant[i].topic);
    free(r->deny);
    free(r->grant);
}

static struct acl_rules *user_rules(struct auth_data *a, const char *name)
{
    for (size_t i = 0; i < a->n_acl_users; i++) /* load time only; sorted afterwards */
        if (!strcmp(a->acl_users[i].name, name))
            return &a->acl_users[i].rules;
    a->acl_users = xrealloc(a->acl_users, sizeof(*a->acl_users) * (a->n_acl_users + 1));
    struct acl_user *u = &a->acl_users[a->n_acl_users++];
    memset(u, 0, sizeof(*u));
    u->name = xstrdup(name);
    return &u->rules;
}

static int cmp_acl_user(const void *x, const void *y)
{
    return strcmp(((const struct acl_user *)x)->name, ((const struct acl_user *)y)->name);
}

/* Next word of *s (blank-separated); NULL at the end. */
static char *next_word(char **s)
{
    char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p) {
        *s = p;
        return NULL;
    }
    char *w = p;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    if (*p)
        *p++ = '\0';
    *s = p;
    return w;
}

static int parse_acl_line(struct auth_data *a, char *line, const char *path, unsigned lineno, char **cur_user, char *err,
                          size_t errlen)
{
    char *rest = trim(line);
    if (!*rest || rest[0] == '#')
        return 0;
    char *kw = next_word(&rest);
    if (!strcmp(kw, "user")) {
        char *name = trim(rest);
        if (!*name) {
            snprintf(err, errlen, "%s:%u: missing user name", path, lineno);
            return -1;
        }
        free(*cur_user);
        *cur_user = xstrdup(name);
        return 0;
    }
    if (strcmp(kw, "topic") != 0 && strcmp(kw, "pattern") != 0) {
        snprintf(err, errlen, "%s:%u: invalid line (expected user, topic or pattern): %s", path, lineno, kw);
        return -1;
    }
    /* `topic [ACCESS] TOPIC`: with a single word, that word is the topic (readwrite), even if it
     * reads like an access word. The topic is the rest of the line and may hold spaces. */
    char *word = next_word(&rest);
    if (!word) {
        snprintf(err, errlen, "%s:%u: empty topic", path, lineno);
        return -1;
    }
    char *topic = trim(rest);
    int access = AUTH_READ | AUTH_WRITE;
    if (!*topic) {
        topic = word;
    } else if (!strcmp(word, "read")) {
        access = AUTH_READ;
    } else if (!strcmp(word, "write")) {
        access = AUTH_WRITE;
    } else if (!strcmp(word, "readwrite")) {
        access = AUTH_READ | AUTH_WRITE;
    } else if (!strcmp(word, "deny")) {
        access = 0;
    } else {
        snprintf(err, errlen, "%s:%u: invalid topic access type \"%s\" (read, write, readwrite or deny)", path,
                 lineno, word);
        return -1;
    }
    if (!mqtt_topic_filter_valid((const uint8_t *)topic, strlen(topic))) {
        snprintf(err, errlen, "%s:%u: invalid ACL topic \"%s\"", path, lineno, topic);
        return -1;
    }
    if (kw[0] == 'p') {
        rules_add(&a->patterns, topic, access);
    } else if (*cur_user) {
        rules_add(user_rules(a, *cur_user), topic, access);
    } else {
        a->has_anon = true;
        rules_add(&a->anon, topic, access);
    }
    return 0;
}

static int load_aclfile(struct auth_data *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: unable to open ACL file: %s", path, strerror(errno));
        return -1;
    }
    a->has_acl = true;
    char *line = NULL, *cur_user = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        rc = parse_acl_line(a, line, path, lineno, &cur_user, err, errlen);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = -1;
    }
    free(line);
    free(cur_user);
    fclose(f);
    if (a->n_acl_users > 1)
        qsort(a->acl_users, a->n_acl_users, sizeof(*a->acl_users), cmp_acl_user);
    return rc;
}

/* ---------------------------------------------------------------- public */

static void data_free(struct auth_data *a);

static struct auth_data *data_load(const char *password_file, const char *acl_file, char *err, size_t errlen)
{
    struct auth_data *a = xrealloc(NULL, sizeof(*a));
    memset(a, 0, sizeof(*a));
    if ((password_file && load_pwfile(a, password_file, err, errlen) != 0) ||
        (acl_file && load_aclfile(a, acl_file, err, errlen) != 0)) {
        data_free(a);
        return NULL;
    }
    return a;
}

auth_t *auth_load(const char *password_file, const char *acl_file, char *err, size_t errlen)
{
    struct auth_data *d = data_load(password_file, acl_file, err, errlen);
    if (!d)
        return NULL;
    auth_t *a = xrealloc(NULL, sizeof(*a));
    memset(a, 0, sizeof(*a));
    pthread_rwlock_init(&a->lock, NULL);
    a->d = d;
    a->pw_path = password_file ? xstrdup(password_file) : NULL;
    a->acl_path = acl_file ? xstrdup(acl_file) : NULL;
    a->has_pwfile = d->has_pwfile;
    a->has_acl = d->has_acl;
    if (RAND_bytes(a->decoy_key, sizeof(a->decoy_key)) != 1) {
        snprintf(err, errlen, "no random bytes for the SCRAM decoy key");
        auth_free(a);
        return NULL;
    }
    return a;
}

int auth_reload_files(auth_t *a, const char *password_file, const char *acl_file, char *err, size_t errlen)
{
    if (!a)
        return 0;
    struct auth_data *d = data_load(password_file, acl_file, err, errlen);
    if (!d)
        return -1; /* the files as they were stay in force */
    char *pw = password_file ? xstrdup(password_file) : NULL;
    char *acl = acl_file ? xstrdup(acl_file) : NULL;
    free(a->pw_path);
    free(a->acl_path);
    a->pw_path = pw;
    a->acl_path = acl;
    pthread_rwlock_wrlock(&a->lock);
    struct auth_data *old = a->d;
    a->d = d;
    atomic_store(&a->has_pwfile, d->has_pwfile);
    atomic_store(&a->has_acl, d->has_acl);
    pthread_rwlock_unlock(&a->lock);
    data_free(old);
    return 0;
}

int auth_reload(auth_t *a, char *err, size_t errlen)
{
    return a ? auth_reload_files(a, a->pw_path, a->acl_path, err, errlen) : 0;
}

const char *auth_password_file(const auth_t *a)
{
    return a ? a->pw_path : NULL;
}

const char *auth_acl_file(const auth_t *a)
{
    return a ? a->acl_path : NULL;
}

void auth_free(auth_t *a)
{
    if (!a)
        return;
    plugin_set_free(a->plugins);
    data_free(a->d);
    free(a->pw_path);
    free(a->acl_path);
    pthread_rwlock_destroy(&a->lock);
    OPENSSL_cleanse(a->decoy_key, sizeof(a->decoy_key));
    free(a);
}

static void data_free(struct auth_data *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_users; i++)
        free(a->users[i].name);
    free(a->users);
    rules_free(&a->anon);
    for (size_t i = 0; i < a->n_acl_users; i++) {
        free(a->acl_users[i].name);
        rules_free(&a->acl_users[i].rules);
    }
    free(a->acl_users);
    rules_free(&a->patterns);
    for (int i = 0; i < a->n_warnings; i++)
        free(a->warnings[i]);
    free(a->warnings);
    free(a);
}

const char *auth_warning(const auth_t *a, int i)
{
    return a && i >= 0 && i < a->d->n_warnings ? a->d->warnings[i] : NULL;
}

bool auth_has_password_file(const auth_t *a)
{
    return a && atomic_load_explicit(&a->has_pwfile, memory_order_relaxed);
}

bool auth_has_acl(const auth_t *a)
{
    return a && (atomic_load_explicit(&a->has_acl, memory_order_relaxed) || plugin_set_has_acl(a->plugins));
}

void auth_set_plugins(auth_t *a, plugin_set_t *ps)
{
    a->plugins = ps;
}

plugin_set_t *auth_plugins(const auth_t *a)
{
    return a ? a->plugins : NULL;
}

bool auth_needs_thread(const auth_t *a, bool has_user, size_t ulen)
{
    return (auth_has_password_file(a) && has_user && ulen > 0) || plugin_set_has_basic_auth(auth_plugins(a));
}

static uint8_t data_connect(const struct auth_data *a, bool allow_anonymous, const uint8_t *user, size_t ulen,
                            bool has_user, const uint8_t *pw, size_t pwlen, bool has_pw)
{
    /* Mosquitto reads a zero-length user name or password as absent. */
    if (ulen == 0)
        has_user = false;
    if (pwlen == 0)
        has_pw = false;
    if (!a || !a->has_pwfile || !has_user)
        return allow_anonymous ? MQTT_RC_SUCCESS : MQTT_RC_NOT_AUTHORIZED;
    const struct pw_user *found = NULL;
    for (size_t i = 0; i < a->n_users && !found; i++)
        if (a->users[i].len == ulen && !memcmp(a->users[i].name, user, ulen))
            found = &a->users[i];
    if (!found) {
        /* Spend the time a real check would, so a refusal does not tell whether the user exists. */
        static const struct pwhash dummy = {.type = PWHASH_SHA512_PBKDF2,
                                            .iterations = PWHASH_PBKDF2_ITERATIONS,
                                            .salt_len = PWHASH_SALT_LEN};
        (void)pwhash_verify(&dummy, has_pw ? pw : (const uint8_t *)"", has_pw ? pwlen : 0);
        return MQTT_RC_NOT_AUTHORIZED;
    }
    if (!has_pw)
        return MQTT_RC_NOT_AUTHORIZED;
    return pwhash_verify(&found->hash, pw, pwlen) ? MQTT_RC_SUCCESS : MQTT_RC_NOT_AUTHORIZED;
}

bool auth_scram_lookup(const auth_t *a, const char *user, size_t ulen, struct scram_verifier *v, bool *has_other)
{
    bool found = false;
    *has_other = false;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&a->lock);
    const struct auth_data *d = a->d;
    for (size_t i = 0; i < d->n_users; i++) {
        if (d->users[i].len == ulen && !memcmp(d->users[i].name, user, ulen)) {
            found = pwhash_scram_verifier(&d->users[i].hash, v) == 0;
            *has_other = !found;
            break;
        }
    }
    pthread_rwlock_unlock((pthread_rwlock_t *)&a->lock);
    if (found)
        return true;
    /* A decoy: the same salt for the same name every time (HMAC of a random key), the default
     * count, and keys nobody can match. */
    uint8_t mac[32];
    unsigned int len = 0;
    memset(v, 0, sizeof(*v));
    if (HMAC(EVP_sha256(), a->decoy_key, (int)sizeof(a->decoy_key), (const uint8_t *)user, ulen, mac, &len))
        memcpy(v->salt, mac, SCRAM_SALT_LEN);
    v->salt_len = SCRAM_SALT_LEN;
    v->iterations = SCRAM_ITERATIONS;
    RAND_bytes(v->stored_key, SCRAM_KEY_LEN);
    RAND_bytes(v->server_key, SCRAM_KEY_LEN);
    return false;
}

/* Does ACL filter f (fn bytes) match topic t? A '$' topic needs a '$' filter (Mosquitto). */
static bool acl_match(const char *f, size_t fn, const uint8_t *t, size_t n)
{
    if (n > 0 && t[0] == '$' && (fn == 0 || f[0] != '$'))
        return false;
    return mqtt_topic_match((const uint8_t *)f, fn, t, n);
}

/* May some topic match both the filter f and the ACL filter a? Level by level: '#' on either side
 * matches whatever is left (it also matches the parent level), '+' any one level, else the levels
 * must be equal. Topics starting with '$' are matched only by filters and ACL topics that start
 * with '$' themselves ([MQTT-4.7.2-1] for filters, acl_match for the ACL), so a '$' on one side only
 * means no common topic. */
static bool filters_overlap(const uint8_t *f, size_t fn, const char *a, size_t an)
{
    bool fd = fn > 0 && f[0] == '$', ad = an > 0 && a[0] == '$';
    if (fd != ad)
        return false;
    size_t i = 0, j = 0;
    for (;;) {
        size_t fe = i, ae = j;
        while (fe < fn && f[fe] != '/')
            fe++;
        while (ae < an && a[ae] != '/')
            ae++;
        bool f_hash = fe - i == 1 && f[i] == '#', a_hash = ae - j == 1 && a[j] == '#';
        if (f_hash || a_hash)
            return true;
        bool f_plus = fe - i == 1 && f[i] == '+', a_plus = ae - j == 1 && a[j] == '+';
        if (!f_plus && !a_plus && (fe - i != ae - j || memcmp(f + i, a + j, fe - i) != 0))
            return false;
        bool f_end = fe == fn, a_end = ae == an;
        if (f_end && a_end)
            return true;
        if (f_end || a_end) /* one is done: only a '#' level left on the other still matches */
            return !a_end ? an - (ae + 1) == 1 && a[ae + 1] == '#' : fn - (fe + 1) == 1 && f[fe + 1] == '#';
        i = fe + 1;
        j = ae + 1;
    }
}

/* Does a rule of r grant READ on some topic the filter can match? */
static bool rules_read_overlap(const struct acl_rules *r, const uint8_t *f, size_t fn)
{
    for (size_t i = 0; i < r->n_grant; i++)
        if ((r->grant[i].access & AUTH_READ) && filters_overlap(f, fn, r->grant[i].topic, r->grant[i].len))
            return true;
    return false;
}

/* -1: a deny rule matches; 1: a rule granting `access` matches; 0: no decision. */
static int rules_check(const struct acl_rules *r, const uint8_t *t, size_t n, int access)
{
    for (size_t i = 0; i < r->n_deny; i++)
        if (acl_match(r->deny[i].topic, r->deny[i].len, t, n))
            return -1;
    for (size_t i = 0; i < r->n_grant; i++)
        if ((r->grant[i].access & access) && acl_match(r->grant[i].topic, r->grant[i].len, t, n))
            return 1;
    return 0;
}

/* Expand pattern p with %c and %u into buf (or a heap buffer if it does not fit) and match it
 * against the topic (overlap == false) or test it for a common topic with the filter t (true). */
static bool pattern_test(const struct acl_rule *p, const char *cid, size_t clen, const char *user, size_t ulen,
                         const uint8_t *t, size_t n, bool overlap)
{
    size_t need = p->len + p->n_c * clen + p->n_u * ulen;
    char stack[256];
    char *buf = need <= sizeof(stack) ? stack : xrealloc(NULL, need);
    size_t o = 0;
    for (size_t i = 0; i < p->len; i++) {
        if (p->topic[i] == '%' && i + 1 < p->len && p->topic[i + 1] == 'c') {
            memcpy(buf + o, cid, clen);
            o += clen, i++;
        } else if (p->topic[i] == '%' && i + 1 < p->len && p->topic[i + 1] == 'u' && user) {
            memcpy(buf + o, user, ulen);
            o += ulen, i++;
        } else {
            buf[o++] = p->topic[i];
        }
    }
    bool m = overlap ? filters_overlap(t, n, buf, o) : acl_match(buf, o, t, n);
    if (buf != stack)
        free(buf);
    return m;
}

static bool pattern_match(const struct acl_rule *p, const char *cid, size_t clen, const char *user, size_t ulen,
                          const uint8_t *t, size_t n)
{
    return pattern_test(p, cid, clen, user, ulen, t, n, false);
}

static bool pattern_expand_overlap(const struct acl_rule *p, const char *cid, size_t clen, const char *user,
                                   size_t ulen, const uint8_t *f, size_t fn)
{
    return pattern_test(p, cid, clen, user, ulen, f, fn, true);
}

static bool data_acl(const struct auth_data *a, const char *client_id, const char *username, const uint8_t *topic,
                     size_t n, int access)
{
    if (!a->has_acl)
        return true;
    if (username && !*username)
        username = NULL; /* an empty user name is no user name (Mosquitto) */

    /* 1. The client's own section. */
    const struct acl_rules *own = NULL;
    if (username) {
        size_t lo = 0, hi = a->n_acl_users;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(username, a->acl_users[mid].name);
            if (c == 0) {
                own = &a->acl_users[mid].rules;
                break;
            }
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
    } else if (a->has_anon) {
        own = &a->anon;
    }
    if (access & AUTH_SUBSCRIBE) {
        if (own && rules_read_overlap(own, topic, n))
            return true;
    } else if (own) {
        int r = rules_check(own, topic, n, access);
        if (r != 0)
            return r > 0;
    }

    /* 2. Patterns. A '+' or '#' in a substituted name could widen a pattern to other clients'
     * topics: such clients get nothing from patterns. */
    const struct acl_rules *p = &a->patterns;
    if (p->n_deny + p->n_grant == 0)
        return false;
    if ((username && strpbrk(username, "+#")) || strpbrk(client_id, "+#"))
        return false;
    size_t clen = strlen(client_id), ulen = username ? strlen(username) : 0;
    if (access & AUTH_SUBSCRIBE) {
        for (size_t i = 0; i < p->n_grant; i++) {
            if ((p->grant[i].n_u && !username) || !(p->grant[i].access & AUTH_READ))
                continue;
            if (pattern_expand_overlap(&p->grant[i], client_id, clen, username, ulen, topic, n))
                return true;
        }
        return false;
    }
    for (size_t i = 0; i < p->n_deny; i++) {
        if (p->deny[i].n_u && !username)
            continue;
        if (pattern_match(&p->deny[i], client_id, clen, username, ulen, topic, n))
            return false;
    }
    for (size_t i = 0; i < p->n_grant; i++) {
        if ((p->grant[i].n_u && !username) || !(p->grant[i].access & access))
            continue;
        if (pattern_match(&p->grant[i], client_id, clen, username, ulen, topic, n))
            return true;
    }
    return false;
}

uint8_t auth_connect(const auth_t *a, bool allow_anonymous, const uint8_t *user, size_t ulen, bool has_user,
                     const uint8_t *pw, size_t pwlen, bool has_pw)
{
    return auth_connect_client(a, allow_anonymous, NULL, user, ulen, has_user, pw, pwlen, has_pw);
}

/* The plugins' MOSQ_EVT_BASIC_AUTH, then (all deferred) the password file, with Mosquitto 2.0's
 * rules (its mosquitto_unpwd_check and the anonymous check of handle_connect.c): the plugins come
 * first, in order, and the first that does not defer decides; when every one defers, the password
 * file decides for a user name, and allow_anonymous for a client without one. */
static uint8_t plugins_connect(const auth_t *a, bool allow_anonymous, struct mosquitto *client,
                               const uint8_t *user, size_t ulen, bool has_user, const uint8_t *pw, size_t pwlen,
                               bool has_pw, bool *decided)
{
    *decided = true;
    char *u = has_user && ulen ? strndup((const char *)user, ulen) : NULL;
    char *p = has_pw && pwlen ? malloc(pwlen + 1) : NULL;
    if ((has_user && ulen && !u) || (has_pw && pwlen && !p))
        abort();
    if (p) {
        memcpy(p, pw, pwlen); /* Mosquitto hands the password as a C string: binary stops at a NUL */
        p[pwlen] = '\0';
    }
    struct mosquitto who = client ? *client : (struct mosquitto){0};
    who.username = u;
    who.can_set_username = client != NULL; /* the caller takes a new name */
    who.set_username = NULL;
    who.username_changed = false;
    enum plugin_answer r = plugin_basic_auth(a->plugins, &who, u, p);
    if (who.username_changed) {
        free(client->set_username);
        client->set_username = who.set_username;
        client->username_changed = true;
    }
    if (p) {
        OPENSSL_cleanse(p, pwlen);
        free(p);
    }
    uint8_t rc = MQTT_RC_NOT_AUTHORIZED;
    if (r == PLUGIN_ALLOW)
        rc = (u || allow_anonymous) ? MQTT_RC_SUCCESS : MQTT_RC_NOT_AUTHORIZED;
    else if (r == PLUGIN_DEFER && !auth_has_password_file(a))
        rc = (!u && allow_anonymous) ? MQTT_RC_SUCCESS : MQTT_RC_NOT_AUTHORIZED;
    else if (r == PLUGIN_DEFER)
        *decided = false; /* the password file decides */
    free(u);
    return rc;
}

uint8_t auth_connect_client(const auth_t *a, bool allow_anonymous, struct mosquitto *client,
                            const uint8_t *user, size_t ulen, bool has_user, const uint8_t *pw, size_t pwlen,
                            bool has_pw)
{
    if (!a)
        return data_connect(NULL, allow_anonymous, user, ulen, has_user, pw, pwlen, has_pw);
    if (plugin_set_has_basic_auth(a->plugins)) {
        bool decided;
        uint8_t rc = plugins_connect(a, allow_anonymous, client, user, ulen, has_user, pw, pwlen, has_pw, &decided);
        if (decided)
            return rc;
    }
    auth_t *m = (auth_t *)a; /* the lock is not part of the value */
    pthread_rwlock_rdlock(&m->lock);
    uint8_t rc = data_connect(a->d, allow_anonymous, user, ulen, has_user, pw, pwlen, has_pw);
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

bool auth_acl(const auth_t *a, const char *client_id, const char *username, const uint8_t *topic, size_t n,
              int access)
{
    return auth_acl_msg(a, client_id, username, topic, n, access, NULL);
}

bool auth_acl_msg(const auth_t *a, const char *client_id, const char *username, const uint8_t *topic, size_t n,
                  int access, const auth_msg_t *msg)
{
    if (!auth_has_acl(a))
        return true;
    if ((access & AUTH_UNSUBSCRIBE) && !plugin_set_has_acl(a->plugins))
        return true;
    if (plugin_set_has_acl(a->plugins)) {
        /* The plugins first, in order; every one deferring leaves it to the ACL file, and with none
         * the check is refused (Mosquitto's mosquitto_acl_check). */
        struct mosquitto who = {.id = client_id, .username = username && *username ? username : NULL};
        enum plugin_answer r = plugin_acl_check(a->plugins, &who, topic, n, access, msg ? msg->payload : NULL,
                                                msg ? msg->payloadlen : 0, msg ? msg->qos : 0,
                                                msg ? msg->retain : false);
        if (r != PLUGIN_DEFER)
            return r == PLUGIN_ALLOW;
        if (!atomic_load_explicit(&a->has_acl, memory_order_relaxed))
            return false;
        if (access & AUTH_UNSUBSCRIBE)
            return true;
    }
    auth_t *m = (auth_t *)a;
    pthread_rwlock_rdlock(&m->lock);
    bool ok = data_acl(a->d, client_id, username, topic, n, access);
    pthread_rwlock_unlock(&m->lock);
    return ok;
}
