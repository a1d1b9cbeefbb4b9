/*
 * pocketvm-login UID GID PROGRAM [ARG...]: the last step of the console
 * login (etc/service/console-shell/run). It gives the shell what a terminal
 * login gives it and busybox cannot: every signal back to its default (runit
 * starts services with SIGINT and SIGQUIT ignored, and ignored signals stay
 * ignored across exec, so Ctrl-C would never reach a program), then drops to
 * the person's uid and gid, goes to $HOME and runs PROGRAM (argv[0] given a
 * leading '-' when PROGRAM is a shell started with -l, as login does).
 * The controlling terminal is set up before it, by setsid + cttyhack.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: pocketvm-login UID GID PROGRAM [ARG...]\n");
		return 2;
	}
	char *end;
	unsigned long uid = strtoul(argv[1], &end, 10);
	if (*end || !*argv[1]) {
		fprintf(stderr, "pocketvm-login: %s is not a uid\n", argv[1]);
		return 2;
	}
	unsigned long gid = strtoul(argv[2], &end, 10);
	if (*end || !*argv[2]) {
		fprintf(stderr, "pocketvm-login: %s is not a gid\n", argv[2]);
		return 2;
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	gid_t group = (gid_t)gid;
	if (setgroups(1, &group) != 0 || setgid(group) != 0 || setuid((uid_t)uid) != 0) {
		fprintf(stderr, "pocketvm-login: cannot become %lu:%lu: %s\n", uid, gid, strerror(errno));
		return 1;
	}
	const char *home = getenv("HOME");
	if (!home || chdir(home) != 0)
		(void)!chdir("/");
	execvp(argv[3], argv + 3);
	fprintf(stderr, "pocketvm-login: %s: %s\n", argv[3], strerror(errno));
	return 127;
}
