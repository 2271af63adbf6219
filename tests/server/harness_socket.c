/* harness_socket.c - raw TCP connections to the server: connect, send,
 * read a response by hand, stall or reset a download, and see from
 * /proc/net/tcp whether the server took in a close (see harness.h). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int hs_local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0 || a.sin_family != AF_INET)
        return -1;
    return ntohs(a.sin_port);
}

/* How many of the ports still have a server end that has not seen the
 * client's FIN or RST: a line of /proc/net/tcp with local port server_port,
 * remote port one of them, in SYN_RECV (03), ESTABLISHED (01), FIN_WAIT1
 * (04) or FIN_WAIT2 (05). A reset socket leaves the table; a closed one
 * waits in CLOSE_WAIT (08) for the server to close it. */
static size_t server_ends_open(int server_port, const int *ports, size_t n)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return n;
    size_t open_ends = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned local_port, remote_port, state;
        if (sscanf(line, " %*u: %*x:%x %*x:%x %x", &local_port, &remote_port, &state) != 3)
            continue; /* the header */
        bool unaware = state == 0x01 || state == 0x03 || state == 0x04 || state == 0x05;
        if ((int)local_port != server_port || !unaware)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (ports[i] == (int)remote_port) {
                open_ends++;
                break;
            }
        }
    }
    fclose(f);
    return open_ends;
}

bool hs_await_server_saw_close(const hs_server *s, const int *client_ports, size_t n,
                               int timeout_ms)
{
    double deadline = hs_now() + timeout_ms / 1000.0;
    size_t open_ends;
    while ((open_ends = server_ends_open(s->port, client_ports, n)) > 0 && hs_now() < deadline)
        usleep(2000);
    if (open_ends > 0)
        fprintf(stderr, "harness: %zu of %zu closed connection(s) still open at the server\n",
                open_ends, n);
    return open_ends == 0;
}

int hs_connect(const hs_server *s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int hs_get_stalled(const hs_server *s, const char *path, int *status)
{
    *status = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[1200], head[64];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || n >= (int)sizeof req ||
        send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        perror("harness: hs_get_stalled");
        close(fd);
        return -1;
    }
    size_t len = 0;
    while (len < 12) { /* "HTTP/1.1 200" */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t got = poll(&p, 1, HS_PATIENCE_MS) == 1 ? recv(fd, head + len, 12 - len, 0) : -1;
        if (got <= 0) {
            fprintf(stderr, "harness: hs_get_stalled: no status line\n");
            close(fd);
            return -1;
        }
        len += (size_t)got;
    }
    head[len] = '\0';
    if (sscanf(head, "HTTP/1.1 %d", status) != 1)
        *status = -1;
    return fd;
}

void hs_reset(int fd)
{
    struct linger reset = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd);
}

bool hs_closed_by_server(int fd, int timeout_ms)
{
    double give_up = hs_now() + timeout_ms / 1000.0;
    char buf[4096];
    while (hs_now() < give_up) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)((give_up - hs_now()) * 1000) + 1;
        if (poll(&p, 1, left) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
    return false;
}

size_t hs_read_all(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t len = 0;
    double deadline = hs_now() + timeout_ms / 1000.0;
    while (len + 1 < size) {
        int left = (int)((deadline - hs_now()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

int hs_read_response(int fd, char *buf, size_t size, int timeout_ms, const char **body)
{
    size_t len = 0;
    double deadline = hs_now() + timeout_ms / 1000.0;
    buf[0] = '\0';
    *body = buf;
    while (len + 1 < size) {
        const char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t want = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            if (len >= (size_t)(end + 4 - buf) + want) {
                int status = -1;
                *body = end + 4;
                return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : -1;
            }
        }
        int left = (int)((deadline - hs_now()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left > 0 ? left : 0) <= 0)
            break;
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return -1;
}
