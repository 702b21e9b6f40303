/* config_tls.c -- a listener's TLS directives checked together once the file is read: a key needs
 * its certificate, require_certificate a CA, a TLS directive on a plain listener is an error rather
 * than a silent no-op. The files themselves are read at start-up (broker.c, src/tls). */
#include <stdio.h>
#include <string.h>

#include "broker/config_parse.h"

int check_tls(struct tombo_listener *l, bool plugins, char *err, size_t errlen)
{
    const char *where = NULL, *msg = NULL;
#define TLS_FAIL(w, m) do { where = l->tls_where[w]; msg = (m); goto fail; } while (0)
    if (l->certfile && !l->keyfile)
        TLS_FAIL(TLSW_CERTFILE, "certfile needs keyfile (the certificate's private key)");
    if (l->keyfile && !l->certfile)
        TLS_FAIL(TLSW_KEYFILE, "keyfile needs certfile (the certificate of that key)");
    if (!tombo_listener_tls(l)) {
        /* Any other TLS directive on a plain listener would be silently without effect. */
        for (int i = 0; i < TLSW_N; i++)
            if (l->tls_where[i] && i != TLSW_PSK_FILE) /* psk_file may be global */
                TLS_FAIL(i, "this listener has no certfile/keyfile (nor psk_hint), so it is not a TLS "
                            "listener; add them or remove this line");
        return 0;
    }
    if (l->require_certificate && !l->cafile && !l->capath)
        TLS_FAIL(TLSW_REQUIRE_CERTIFICATE, "require_certificate needs cafile or capath to verify client "
                                           "certificates with");
    if ((l->use_identity_as_username || l->use_subject_as_username) && !l->require_certificate && !l->psk_hint)
        TLS_FAIL(l->use_identity_as_username ? TLSW_USE_IDENTITY : TLSW_USE_SUBJECT,
                 "the username comes from the client certificate: set require_certificate true");
    if (l->use_identity_as_username && l->use_subject_as_username)
        TLS_FAIL(TLSW_USE_SUBJECT, "use_identity_as_username and use_subject_as_username exclude each other");
    if (l->psk_hint && !l->psk_file && !plugins) /* with plugins: transport_tls.c checks one gives keys */
        TLS_FAIL(TLSW_PSK_HINT, "psk_hint needs psk_file (the identities and their keys)");
    if (l->tls_version && strcmp(l->tls_version, "tlsv1.2") && strcmp(l->tls_version, "tlsv1.3"))
        TLS_FAIL(TLSW_TLS_VERSION, "tls_version must be tlsv1.2 or tlsv1.3 (TLS 1.1 and older are not "
                                   "offered)");
    return 0;
#undef TLS_FAIL
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", where ? where : (l->origin ? l->origin : "config"), msg);
    return -1;
}
