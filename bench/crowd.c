/* Keeps N processes alive: forks N children that wait in pause(), prints "ready N" on stdout
 * once all exist, then waits until its standard input closes (or SIGTERM) and kills them.
 * Usage: crowd N. The tracer's process-identity cache then holds N more processes. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: crowd N\n");
        return 2;
    }
    long n = atol(argv[1]);
    pid_t *kids = calloc(n > 0 ? n : 1, sizeof(pid_t));
    if (!kids)
        return 1;
    long made = 0;
    for (; made < n; made++) {
        pid_t p = fork();
        if (p < 0) {
            perror("fork");
            break;
        }
        if (p == 0) {
            /* Dies with the parent, whatever ends it. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1)
                _exit(0);
            for (;;)
                pause();
        }
        kids[made] = p;
    }
    printf("ready %ld\n", made);
    fflush(stdout);
    char buf[64];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    for (long i = 0; i < made; i++)
        kill(kids[i], SIGKILL);
    for (long i = 0; i < made; i++)
        waitpid(kids[i], NULL, 0);
    return made == n ? 0 : 1;
}
