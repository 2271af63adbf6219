/* pause.h - POST /channels/NAME/pause and POST /channels/NAME/resume.
 *
 * Pause: GETs of the channel (plain, leased, batch) take nothing and wait
 * as on an empty channel, answering 204 at their deadline; forwarding of it
 * takes nothing; POSTs are still accepted. Resume: the waiting GETs take
 * messages at once, forwarding starts again. Both answer 200
 * {"channel": NAME, "paused": true|false}, also when the channel already
 * was in that state; 404 no_channel for a channel that does not exist
 * (neither creates one); 500 io_error if the state cannot be written
 * (pause_file.h: it is kept across restarts), which leaves it as it was. */
#ifndef HOPPER_SERVER_PAUSE_H
#define HOPPER_SERVER_PAUSE_H

#include "request.h"

extern const request_handler pause_handler;
extern const request_handler resume_handler;

#endif
