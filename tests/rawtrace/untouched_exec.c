/* A vfork child that execs /bin/true from string literals in a page the process never
   touched: the workload of the exec facts tests (test_exec_facts_live.py).

   bpf_probe_read_user at execve's entry cannot fault that page in, so only the kernel's copy
   (sched_process_exec) knows the path. The literals sit in a section of their own, 64 KiB
   aligned and long, so that no fault nearby maps their page with it (fault-around maps up to
   64 KiB of cached pages around a fault). Prints the child's pid. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNTOUCHED __attribute__((section(".untouched"), aligned(65536), used))
UNTOUCHED static const char PATH[65536] = "/bin/true";
UNTOUCHED static const char ARG0[65536] = "true";
UNTOUCHED static const char ARG1[65536] = "untouched-arg";

int main(void) {
    pid_t child = vfork();
    if (child == 0) {
        execl(PATH, ARG0, ARG1, (char *)0);
        _exit(127);
    }
    if (child < 0)
        return 1;
    printf("%d\n", child);
    fflush(stdout);
    waitpid(child, NULL, 0);
    return 0;
}
