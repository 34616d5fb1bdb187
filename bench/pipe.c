/* One byte back and forth between two processes over two pipes: each round trip is two
 * write(2) and two read(2) calls and two wake-ups, and no signal. Usage: pipe SECONDS.
 * Prints "rounds=N seconds=S rate=R" on stdout. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: pipe SECONDS\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    int to_child[2], to_parent[2];
    if (pipe(to_child) != 0 || pipe(to_parent) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    char b = 'x';
    if (child == 0) {
        close(to_child[1]);
        close(to_parent[0]);
        /* Echo until the parent closes its end. */
        while (read(to_child[0], &b, 1) == 1)
            if (write(to_parent[1], &b, 1) != 1)
                _exit(1);
        _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    unsigned long rounds = 0;
    double start = now(), end = start + seconds, t = start;
    for (;;) {
        if (write(to_child[1], &b, 1) != 1 || read(to_parent[0], &b, 1) != 1) {
            perror("pipe round trip");
            kill(child, SIGKILL);
            return 1;
        }
        rounds++;
        if ((rounds & 15) == 0 && (t = now()) >= end)
            break;
    }
    close(to_child[1]);
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pipe: the echoing child failed\n");
        return 1;
    }
    double elapsed = t - start;
    printf("rounds=%lu seconds=%.6f rate=%.1f\n", rounds, elapsed, (double)rounds / elapsed);
    return 0;
}
