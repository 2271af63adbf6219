/* token.h - the "hopper token" subcommand: a new random token, and the
 * --auth-file line that admits it. */
#ifndef HOPPER_SERVER_TOKEN_H
#define HOPPER_SERVER_TOKEN_H

/* Bytes of randomness in a token: 256 bits, as many as its hash has. */
#define TOKEN_RANDOM_BYTES 32
/* Characters of a token: the bytes in base64url without padding. */
#define TOKEN_TEXT_LEN 43

/* Run "hopper token" (argv[1] is "token"; nothing may follow). Prints on
 * stdout two lines:
 *   TOKEN                                  (give it to the client)
 *   SHA256HEX send:CHANGE-ME receive:CHANGE-ME  # ...  (for the --auth-file)
 * The scopes of the second line are a placeholder that admits nothing
 * real: write the ones the client needs. Returns the exit code: 0, or 2
 * for extra arguments. */
int token_main(int argc, char **argv);

#endif
