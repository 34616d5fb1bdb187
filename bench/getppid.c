/* A tight loop of getppid(2), a syscall that has nothing to do with signals: what a tracer
 * costs every syscall of the host. Usage: getppid SECONDS.
 * Prints "calls=N seconds=S rate=R" on stdout. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no syscall */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: getppid SECONDS\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    unsigned long calls = 0;
    long sink = 0;
    double start = now(), end = start + seconds, t = start;
    for (;;) {
        /* syscall(2), not getppid(3): the call must enter the kernel every time. */
        sink += syscall(SYS_getppid);
        calls++;
        if ((calls & 1023) == 0 && (t = now()) >= end)
            break;
    }
    if (sink <= 0) {
        fprintf(stderr, "getppid: unexpected parent pid\n");
        return 1;
    }
    double elapsed = t - start;
    printf("calls=%lu seconds=%.6f rate=%.1f\n", calls, elapsed, (double)calls / elapsed);
    return 0;
}
