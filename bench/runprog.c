/* Runs an ordinary program over and over, its standard output to /dev/null, for at least
 * SECONDS (and at least once): the run time of a program under a tracer.
 * Usage: runprog SECONDS PROGRAM [ARGS...]. Prints "runs=N seconds=S rate=R" on stdout. */
#define _GNU_SOURCE
#include <fcntl.h>
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
    if (argc < 3) {
        fprintf(stderr, "usage: runprog SECONDS PROGRAM [ARGS...]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    unsigned long runs = 0;
    double start = now(), end = start + seconds, t = start;
    do {
        pid_t child = fork();
        if (child < 0) {
            perror("fork");
            return 1;
        }
        if (child == 0) {
            int null = open("/dev/null", O_WRONLY);
            if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
                _exit(126);
            close(null);
            execvp(argv[2], argv + 2);
            _exit(127);
        }
        int status = 0;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "runprog: %s failed (wait status %d)\n", argv[2], status);
            return 1;
        }
        runs++;
        t = now();
    } while (t < end);
    double elapsed = t - start;
    printf("runs=%lu seconds=%.6f rate=%.3f\n", runs, elapsed, (double)runs / elapsed);
    return 0;
}
