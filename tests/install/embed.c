/* embed.c - a program outside the tree that uses the installed library: a
 * message goes through a channel small enough to page it to disk. */
#include <hopper/hopper.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    hop_limits limits;
    hop_limits_default(&limits);
    limits.memory_bytes = 0; /* every message through a queue file */
    hop_channel *ch;
    hop_err err = hop_channel_open(argv[1], "embedded", &limits, &ch);
    if (err != HOP_OK) {
        fprintf(stderr, "open: %s\n", hop_strerror(err));
        return 1;
    }
    const char *text = "paged through disk";
    void *data = NULL;
    size_t len = 0;
    if ((err = hop_send(ch, text, strlen(text))) == HOP_OK)
        err = hop_recv(ch, 0, &data, &len);
    int ok = err == HOP_OK && len == strlen(text) && memcmp(data, text, len) == 0;
    printf("%s: %.*s\n", ok ? "ok" : hop_strerror(err), (int)len, ok ? (char *)data : "");
    hop_free(data);
    hop_channel_close(ch);
    return ok ? 0 : 1;
}
