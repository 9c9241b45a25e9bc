/* A small C epoll echo load generator for benchmarks/echo.py: the "fastest other
 * generator" that socketkit bench is compared with. Request/response mode only:
 * each connection sends SIZE bytes, waits for all of them (checked with memcmp),
 * then sends again. Prints one JSON line.
 *
 *   epoll_client HOST PORT CONNS SIZE SECONDS WARMUP
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
    if (conns < 1 || size < 1 || conns > 100000) return 64;
    char *msg = malloc(size), *buf = malloc((size_t)size * conns);
    int *fill = calloc(conns, sizeof(int)), *fds = calloc(conns, sizeof(int));
    for (int i = 0; i < size; i++) msg[i] = (char)(i * 131 + 7);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            printf("{\"error\": \"connect: %s\"}\n", strerror(errno));
            return 69;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fds[i] = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    long long counted = 0, answered = 0, mismatches = 0, errors = 0;
    double start = now(), t0 = start + warmup, t1 = t0 + seconds;
    for (int i = 0; i < conns; i++)
        if (send(fds[i], msg, size, 0) != size) errors++;
    struct epoll_event events[512];
    int live = conns;
    while (live > 0) {
        int n = epoll_wait(ep, events, 512, 100);
        double t = now();
        if (t > t1 + 2.0) break;
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32, fd = fds[i];
            char *b = buf + (size_t)i * size;
            ssize_t r = recv(fd, b + fill[i], size - fill[i], 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                errors++;
                close(fd);
                live--;
                continue;
            }
            fill[i] += (int)r;
            if (fill[i] < size) continue;
            fill[i] = 0;
            answered++;
            if (memcmp(b, msg, size) != 0) mismatches++;
            else if (t >= t0 && t < t1) counted++;
            if (t >= t1) {
                close(fd);
                live--;
                continue;
            }
            if (send(fd, msg, size, 0) != size) errors++;
        }
    }
    printf("{\"requests\": %lld, \"answered\": %lld, \"seconds\": %.6f, \"requests_per_second\": %.1f,"
           " \"mismatches\": %lld, \"errors\": %lld}\n",
           counted, answered, seconds, counted / seconds, mismatches, errors);
    return 0;
}
