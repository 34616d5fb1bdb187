/* raise(3) storm: one process sends itself SIGUSR1 in a loop and handles each one.
 * Every signal is one signal_generate and one signal_deliver tracepoint hit.
 * Usage: storm SECONDS. Prints "signals=N seconds=S rate=R" on stdout. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long handled;

static void on_usr1(int sig) {
    (void)sig;
    handled++;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: storm SECONDS\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0) {
        perror("sigaction");
        return 1;
    }
    unsigned long sent = 0;
    double start = now(), end = start + seconds, t = start;
    for (;;) {
        raise(SIGUSR1);
        sent++;
        if ((sent & 63) == 0 && (t = now()) >= end)
            break;
    }
    double elapsed = t - start;
    if (handled != sent) {
        fprintf(stderr, "storm: sent %lu but handled %lu\n", sent, handled);
        return 1;
    }
    printf("signals=%lu seconds=%.6f rate=%.1f\n", sent, elapsed, (double)sent / elapsed);
    return 0;
}
