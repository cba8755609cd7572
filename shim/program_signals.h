/* The program's signal handlers behind a counting trampoline (program_signals.c). */
#ifndef GAZELLE_PROGRAM_SIGNALS_H
#define GAZELLE_PROGRAM_SIGNALS_H
#include <signal.h>
#include "gazelle_abi.h"

/* The calling thread's counts of the program's handlers run (struct gz_signal_counts). */
struct gz_signal_counts *gz_signal_counts_of_thread(void);

/* libc's sigaction, bypassing the interposed one: the kernel's view of a disposition. */
int gz_libc_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

#endif
