/* Minimal REG/ACK pairing shared by the baseline forwarders: sessions pair two IPv4
 * addresses, a datagram from one member goes to the other. No expiry, no rebinding:
 * the baselines exist to measure forwarding cost, not to be relays. */
#ifndef BENCH_PAIRING_H
#define BENCH_PAIRING_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

enum reply_kind { REPLY_NONE = 0, REPLY_ACK, REPLY_ERR };

typedef struct pairing pairing_t;

pairing_t *pairing_create(uint32_t max_sessions);

/* Returns 1 when data starts with "REG:". */
static inline int pairing_is_reg(const uint8_t *data, size_t len) {
  return len >= 4 && data[0] == 'R' && data[1] == 'E' && data[2] == 'G' && data[3] == ':';
}

/* Handles a REG datagram from src; tells the caller what to answer. */
enum reply_kind pairing_register(pairing_t *p, const uint8_t *data, size_t len, const struct sockaddr_in *src);

/* Partner of src, or NULL when src is not a member of a complete pair. */
const struct sockaddr_in *pairing_partner(const pairing_t *p, const struct sockaddr_in *src);

/* Opens, tunes and binds the UDP socket; exits on failure. Prints the bound port on stderr. */
int baseline_socket(int argc, char **argv, const char *name);

#endif
