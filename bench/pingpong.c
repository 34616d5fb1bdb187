/* Signal ping-pong between two processes: SIGUSR1 back and forth with kill(2) and
 * sigsuspend(2), each side running a handler. One round trip is two signals generated and two
 * delivered. Usage: pingpong SECONDS. Prints "rounds=N seconds=S rate=R" on stdout. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_usr1(int sig) {
    (void)sig;
    got = 1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wait_usr1(const sigset_t *open) {
    while (!got)
        sigsuspend(open);
    got = 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: pingpong SECONDS\n");
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
    sigset_t usr1, open;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &open);
    sigdelset(&open, SIGUSR1);

    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        for (;;) {
            wait_usr1(&open);
            kill(parent, SIGUSR1);
        }
    }
    unsigned long rounds = 0;
    double start = now(), end = start + seconds, t = start;
    for (;;) {
        kill(child, SIGUSR1);
        wait_usr1(&open);
        rounds++;
        if ((rounds & 15) == 0 && (t = now()) >= end)
            break;
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    double elapsed = t - start;
    printf("rounds=%lu seconds=%.6f rate=%.1f\n", rounds, elapsed, (double)rounds / elapsed);
    return 0;
}
