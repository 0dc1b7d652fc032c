// UDP GRO/GSO socket option numbers, for C libraries whose headers predate them (Linux 4.18 / 5.0).
#pragma once

#include <netinet/in.h>
#include <netinet/udp.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
