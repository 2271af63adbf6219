/* ui_assets.h - the dashboard's files, built into the binary: the table
 * that server/ui/embed.cmake generates (ui_assets.c, in the build
 * directory) from server/ui/. Served by ui.c. */
#ifndef HOPPER_SERVER_UI_ASSETS_H
#define HOPPER_SERVER_UI_ASSETS_H

#include <stddef.h>

typedef struct ui_asset {
    const char *path;         /* "/" or "/ui/NAME" */
    const char *content_type; /* with its charset for text */
    const unsigned char *data;
    size_t size;
    const char *etag; /* quoted: the first 16 hex digits of the file's SHA-256 */
} ui_asset;

extern const ui_asset ui_assets[];
extern const size_t ui_asset_count;

#endif
