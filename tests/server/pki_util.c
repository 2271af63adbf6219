/* pki_util.c - the test CA and server certificate (see pki_util.h). */
#include "pki_util.h"

#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long one openssl command may take. */
#define OPENSSL_PATIENCE_S 30.0

/* The OpenSSL configuration the certificates are made with, so that the
 * system's openssl.cnf plays no part. */
static const char openssl_cnf[] = "[req]\n"
                                  "distinguished_name = dn\n"
                                  "prompt = no\n"
                                  "[dn]\n"
                                  "CN = hopper test\n"
                                  "[ca_ext]\n"
                                  "basicConstraints = critical, CA:TRUE\n"
                                  "keyUsage = critical, keyCertSign, cRLSign\n"
                                  "subjectKeyIdentifier = hash\n"
                                  "[server_ext]\n"
                                  "basicConstraints = critical, CA:FALSE\n"
                                  "keyUsage = critical, digitalSignature, keyEncipherment\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                                  "subjectKeyIdentifier = hash\n"
                                  "authorityKeyIdentifier = keyid\n";

/* ---- making the CA and the certificate ---- */

/* The path of an executable named name on PATH into out; false if none. */
static bool find_on_path(const char *name, char *out, size_t size)
{
    const char *path = getenv("PATH");
    if (path == NULL || *path == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len > 0) {
            snprintf(out, size, "%.*s/%s", (int)len, path, name);
            struct stat st;
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
                return true;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return false;
}

void pki_path(const test_pki *pki, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", pki->dir, name);
}

bool pki_openssl(const test_pki *pki, const char *const *args)
{
    const char *argv[32] = {pki->openssl};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char log[PKI_PATH_SIZE];
    pki_path(pki, "openssl.log", log, sizeof log);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDONLY);
        if (fd < 0 || null < 0 || chdir(pki->dir) != 0)
            _exit(126);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(pki->openssl, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    pid_t done = 0;
    double deadline = hs_now() + OPENSSL_PATIENCE_S;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && hs_now() < deadline)
        usleep(10000);
    if (done == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fprintf(stderr, "openssl %s: still running after %.0f s, killed\n", args[0],
                OPENSSL_PATIENCE_S);
        return false;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    fprintf(stderr, "openssl %s failed (wait status %d); its output:\n", args[0], status);
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fputs(line, stderr);
    if (f)
        fclose(f);
    return false;
}

char *pki_read(const test_pki *pki, const char *name)
{
    char path[PKI_PATH_SIZE];
    pki_path(pki, name, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *text = NULL;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size > 0 && fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)size + 1)) != NULL) {
        if (fread(text, 1, (size_t)size, f) == (size_t)size) {
            text[size] = '\0';
        } else {
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    return text;
}

/* Make in pki->dir: ca.key and ca.pem, a CA (P-256, valid 2 days); server.key
 * and server.pem, a certificate for IP 127.0.0.1 (subjectAltName) signed
 * by it. */
static bool make_pki(test_pki *pki)
{
    char cnf[PKI_PATH_SIZE];
    pki_path(pki, "openssl.cnf", cnf, sizeof cnf);
    FILE *f = fopen(cnf, "w");
    if (f == NULL || fputs(openssl_cnf, f) < 0) {
        if (f)
            fclose(f);
        return false;
    }
    if (fclose(f) != 0)
        return false;
    const char *ca[] = {"req",
                        "-x509",
                        "-new",
                        "-config",
                        "openssl.cnf",
                        "-extensions",
                        "ca_ext",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-keyout",
                        "ca.key",
                        "-out",
                        "ca.pem",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=hopper test CA",
                        NULL};
    const char *csr[] = {"req",        "-new",    "-config",       "openssl.cnf",
                         "-newkey",    "ec",      "-pkeyopt",      "ec_paramgen_curve:P-256",
                         "-nodes",     "-keyout", "server.key",    "-out",
                         "server.csr", "-subj",   "/CN=127.0.0.1", NULL};
    const char *sign[] = {"x509",       "-req",   "-in",        "server.csr",  "-CA",
                          "ca.pem",     "-CAkey", "ca.key",     "-set_serial", "2",
                          "-days",      "2",      "-extfile",   "openssl.cnf", "-extensions",
                          "server_ext", "-out",   "server.pem", NULL};
    if (!pki_openssl(pki, ca) || !pki_openssl(pki, csr) || !pki_openssl(pki, sign))
        return false;
    pki_path(pki, "ca.pem", pki->ca, sizeof pki->ca);
    pki->cert_pem = pki_read(pki, "server.pem");
    pki->key_pem = pki_read(pki, "server.key");
    return pki->cert_pem != NULL && pki->key_pem != NULL;
}

int pki_setup(test_pki *pki)
{
    if (!find_on_path("openssl", pki->openssl, sizeof pki->openssl)) {
        pki->skip_reason = "no openssl command on PATH";
        return 0;
    }
    if (hs_make_dir(pki->dir, sizeof pki->dir) != 0)
        return -1;
    if (!make_pki(pki)) {
        fprintf(stderr, "could not make the test CA and certificate in %s\n", pki->dir);
        return -1;
    }
    pki_path(pki, "server.pem", pki->cert, sizeof pki->cert);
    pki_path(pki, "server.key", pki->key, sizeof pki->key);
    return 0;
}

void pki_teardown(test_pki *pki)
{
    free(pki->cert_pem);
    free(pki->key_pem);
    pki->cert_pem = pki->key_pem = NULL;
    hs_remove_tree(pki->dir);
}
