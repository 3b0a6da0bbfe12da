/* A vfork whose child takes its time: the workload of the vfork hold tests.

   usage: vfork_child MS exec PATH ARGS...   the child sleeps MS ms, then execs PATH
          vfork_child MS exit CODE           ... then _exits with CODE
          vfork_child MS signal SIG          ... then is killed by signal SIG

   Prints the child's pid once the parent is released. No Python can do this: a vfork child
   must not return from the function that called vfork, which ctypes would. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MS exec|exit|signal ARG...\n", argv[0]);
        return 2;
    }
    long ms = atol(argv[1]);
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    pid_t child = vfork();
    if (child == 0) {
        nanosleep(&pause, NULL);
        if (strcmp(argv[2], "exec") == 0)
            execv(argv[3], argv + 3);
        else if (strcmp(argv[2], "exit") == 0)
            _exit(atoi(argv[3]));
        else if (strcmp(argv[2], "signal") == 0)
            kill(getpid(), atoi(argv[3]));
        _exit(127);
    }
    if (child < 0)
        return 1;
    printf("%d\n", child);
    fflush(stdout);
    waitpid(child, NULL, 0);
    return 0;
}
