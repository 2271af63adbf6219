/* soak_client.c - HTTP over one keep-alive connection per worker, and the gate. */
#include "soak.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- HTTP over one keep-alive connection per thread ---- */

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    client *c = userdata;
    size_t add = size * n;
    if (c->len + add > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + add)
            cap *= 2;
        unsigned char *p = realloc(c->body, cap);
        if (p == NULL)
            return 0;
        c->body = p;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, add);
    c->len += add;
    return add;
}

void client_release(client *c)
{
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    c->curl = NULL;
    c->headers = NULL;
}

/* A new handle (so a new connection) for the server on port. */
void client_connect(client *c, int port, unsigned gen)
{
    client_release(c);
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        fault("curl_easy_init failed");
        return;
    }
    c->port = port;
    c->generation = gen;
    c->headers = curl_slist_append(NULL, "Expect:");
    if (c->post)
        c->headers = curl_slist_append(c->headers, "Content-Type: application/octet-stream");
    curl_easy_setopt(c->curl, CURLOPT_PROXY, "");
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)HS_PATIENCE_MS);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
}

/* One request; the body is in c->body[0..c->len). Returns the status, or -1
 * on a transport error (a fault, reported here). */
long client_perform(client *c, const char *what, char *content_type, size_t type_size)
{
    if (c->curl == NULL)
        return -1;
    c->len = 0;
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK) {
        fault("%s: %s", what, curl_easy_strerror(rc));
        return -1;
    }
    long status = 0;
    char *type = NULL;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &type);
    snprintf(content_type, type_size, "%s", type ? type : "");
    return status;
}

/* ---- the gate ---- */

/* The gate: the main thread closes it to park every worker between two
 * requests (for the restart), and opens it with a new generation, whose
 * port the workers then use over new connections. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_closed;
static int parked, workers_alive;
static unsigned generation;
static int server_port;

/* Before any worker starts: the server's port and how many workers pass the
 * gate. */
void gate_init(int port, int workers)
{
    server_port = port;
    workers_alive = workers;
}

/* Park while the gate is closed; then reconnect if the server changed. */
void gate_pass(client *c)
{
    pthread_mutex_lock(&gate_lock);
    if (gate_closed) {
        parked++;
        pthread_cond_broadcast(&gate_cond);
        while (gate_closed)
            pthread_cond_wait(&gate_cond, &gate_lock);
        parked--;
    }
    unsigned gen = generation;
    int port = server_port;
    pthread_mutex_unlock(&gate_lock);
    if (c->curl == NULL || gen != c->generation)
        client_connect(c, port, gen);
}

void worker_exit(void)
{
    pthread_mutex_lock(&gate_lock);
    workers_alive--;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* Close the gate and wait until every live worker has parked. */
bool gate_close(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_closed = true;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2 * HS_PATIENCE_MS / 1000;
    bool ok = true;
    while (ok && parked < workers_alive)
        ok = pthread_cond_timedwait(&gate_cond, &gate_lock, &until) == 0;
    ok = parked >= workers_alive;
    pthread_mutex_unlock(&gate_lock);
    return ok;
}

void gate_open(int port)
{
    pthread_mutex_lock(&gate_lock);
    generation++;
    server_port = port;
    gate_closed = false;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}
