/* A C epoll echo server: the yardstick of benchmarks/echo.py (TCP and UDP on one
 * port, 127.0.0.1). Prints "PORT n" and serves until killed.
 *
 *   epoll_echo
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
#include <unistd.h>

int main(void) {
    static char buf[262144];
    int one = 1, lfd = -1, ufd = -1, port = 0;
    for (int attempt = 0; attempt < 50 && ufd < 0; attempt++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) return 71;
        socklen_t len = sizeof sa;
        getsockname(lfd, (struct sockaddr *)&sa, &len);
        port = ntohs(sa.sin_port);
        ufd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (bind(ufd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            close(ufd);
            close(lfd);
            ufd = -1;
        }
    }
    if (ufd < 0) return 71;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = ufd;
    epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
    printf("PORT %d\n", port);
    fflush(stdout);
    struct epoll_event events[512];
    for (;;) {
        int n = epoll_wait(ep, events, 512, -1);
        for (int k = 0; k < n; k++) {
            int fd = events[k].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
            } else if (fd == ufd) {
                for (int d = 0; d < 64; d++) {
                    struct sockaddr_storage from;
                    socklen_t flen = sizeof from;
                    ssize_t r = recvfrom(ufd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
                    if (r < 0) break;
                    sendto(ufd, buf, r, 0, (struct sockaddr *)&from, flen);
                }
            } else {
                ssize_t r = recv(fd, buf, sizeof buf, 0);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN) continue;
                    close(fd);
                    continue;
                }
                /* Blocking-ish write: echo is symmetric, the peer reads. */
                ssize_t off = 0;
                while (off < r) {
                    ssize_t w = send(fd, buf + off, r - off, 0);
                    if (w < 0) {
                        if (errno == EAGAIN) continue;
                        break;
                    }
                    off += w;
                }
            }
        }
    }
}
