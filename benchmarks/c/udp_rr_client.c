/* A C epoll UDP load generator for benchmarks/udp_batch.py (the UDP sibling of
 * epoll_client.c): CONNS sockets, each with its own source port, each keeps
 * one SIZE-byte datagram in flight, checks the echo with memcmp and sends the
 * next. A datagram not answered within 200 ms is counted lost and re-sent.
 * Prints one JSON line.
 *
 *   udp_rr_client HOST PORT CONNS SIZE SECONDS WARMUP
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE SECONDS WARMUP\n", argv[0]);
        return 64;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]), conns = atoi(argv[3]), size = atoi(argv[4]);
    double seconds = atof(argv[5]), warmup = atof(argv[6]);
    if (conns < 1 || size < 1 || size > 65507 || conns > 10000) return 64;
    char *msg = malloc(size), *buf = malloc(65536);
    int *fds = calloc(conns, sizeof(int));
    double *sent_at = calloc(conns, sizeof(double));
    for (int i = 0; i < size; i++) msg[i] = (char)(i * 131 + 7);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return 69;
        fds[i] = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    long long counted = 0, answered = 0, mismatches = 0, errors = 0, lost = 0;
    double start = now(), t0 = start + warmup, t1 = t0 + seconds, last_sweep = start;
    for (int i = 0; i < conns; i++) {
        if (send(fds[i], msg, size, 0) != size) errors++;
        sent_at[i] = start;
    }
    struct epoll_event events[512];
    for (;;) {
        int n = epoll_wait(ep, events, 512, 20);
        double t = now();
        if (t >= t1) break;
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32, fd = fds[i];
            ssize_t r = recv(fd, buf, 65536, 0);
            if (r < 0) {
                if (errno != EAGAIN) errors++;
                continue;
            }
            answered++;
            if (r != size || memcmp(buf, msg, size) != 0) mismatches++;
            else if (t >= t0) counted++;
            if (send(fd, msg, size, 0) != size) errors++;
            sent_at[i] = t;
        }
        if (t - last_sweep > 0.05) {
            last_sweep = t;
            for (int i = 0; i < conns; i++)
                if (t - sent_at[i] > 0.2) {
                    lost++;
                    if (send(fds[i], msg, size, 0) != size) errors++;
                    sent_at[i] = t;
                }
        }
    }
    printf("{\"requests\": %lld, \"answered\": %lld, \"seconds\": %.6f, \"requests_per_second\": %.1f,"
           " \"mismatches\": %lld, \"errors\": %lld, \"lost\": %lld}\n",
           counted, answered, seconds, counted / seconds, mismatches, errors, lost);
    return 0;
}
