/*
 * pocketvm-execd: runs `launcher exec` commands for the launcher, over the
 * virtio-serial port org.pocketvm.exec.0 (src/session/exec-channel.ts is the
 * other end). qemu-guest-agent's guest-exec returns output only at the end and
 * takes stdin as one blob; this streams both ways, several commands at once.
 *
 * Frames, both directions: u32 length (LE, payload only), u8 type, u32 id
 * (LE, the launcher's number for one command), then the payload.
 *   launcher -> guest
 *     'S' start:  u32 uid, u32 gid, u32 argc, u32 envc, then NUL-ended
 *                 strings: working directory, argv..., env...
 *     'I' stdin:  bytes; an empty payload closes the command's stdin (EOF)
 *     'K' signal: u32 signal number, sent to the command's process group
 *   guest -> launcher
 *     'O' / 'E'   stdout / stderr bytes, as they come
 *     'A' ack:    u32 count of stdin bytes written to the command (flow control)
 *     'F' failed: the command could not start; payload: u32 exit code, message
 *     'X' exit:   i32 exit code, i32 signal (0 if none); the last frame of an id
 *
 * Each command runs in a session and process group of its own (setsid), as
 * uid/gid with default signal dispositions, stdin/stdout/stderr on pipes.
 * Once it exits, its output is passed on until its pipes close or 200 ms of
 * silence (2 s at most), then the pipes are closed. What it left running in the
 * background runs on, as `ssh host 'cmd &'` (no terminal) and `docker exec` leave
 * it: a person who starts a server or a long copy with `&` means it to outlive
 * the command. Only Ctrl-C/--timeout (a 'K' frame) or the end of the session
 * signals the whole group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_EXECS 32
#define MAX_FRAME (1u << 20)
#define CHUNK 32768
#define LINGER_MS 200

struct exec {
	int used;
	uint32_t id;
	pid_t pid;
	int in, out, err; /* -1 once closed */
	char *pending;    /* stdin bytes not yet written */
	size_t pending_len, pending_off;
	int close_in; /* close stdin once pending is written */
	int exited, status;
	long long exited_at, exited_first;
};

static struct exec execs[MAX_EXECS];
static int port = -1;
static int sigpipe_fds[2];

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get32(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = { fd, POLLOUT, 0 };
				poll(&pfd, 1, 1000);
				continue;
			}
			/* The launcher is gone: runsv starts us again for the next one. */
			_exit(1);
		}
		p += n;
		len -= n;
	}
}

static void send_frame(char type, uint32_t id, const void *payload, uint32_t len)
{
	unsigned char head[9];
	put32(head, len);
	head[4] = (unsigned char)type;
	put32(head + 5, id);
	write_all(port, head, 9);
	if (len)
		write_all(port, payload, len);
}

static void send_u32(char type, uint32_t id, uint32_t v)
{
	unsigned char b[4];
	put32(b, v);
	send_frame(type, id, b, 4);
}

static struct exec *find(uint32_t id)
{
	for (int i = 0; i < MAX_EXECS; i++)
		if (execs[i].used && execs[i].id == id)
			return &execs[i];
	return NULL;
}

static void fail(uint32_t id, uint32_t code, const char *message)
{
	size_t len = strlen(message);
	unsigned char *b = malloc(4 + len);
	if (!b)
		_exit(1);
	put32(b, code);
	memcpy(b + 4, message, len);
	send_frame('F', id, b, 4 + len);
	free(b);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void finish(struct exec *e)
{
	unsigned char b[8];
	int code = 0, sig = 0;
	if (WIFEXITED(e->status))
		code = WEXITSTATUS(e->status);
	else if (WIFSIGNALED(e->status)) {
		sig = WTERMSIG(e->status);
		code = 128 + sig;
	}
	close_fd(&e->in);
	close_fd(&e->out);
	close_fd(&e->err);
	free(e->pending);
	put32(b, (uint32_t)code);
	put32(b + 4, (uint32_t)sig);
	send_frame('X', e->id, b, 8);
	memset(e, 0, sizeof *e);
}

/* Splits the start payload and forks the command. */
static void start(uint32_t id, const unsigned char *p, uint32_t len)
{
	if (find(id))
		return fail(id, 2, "pocketvm-execd: duplicate command id");
	struct exec *e = NULL;
	for (int i = 0; i < MAX_EXECS; i++)
		if (!execs[i].used) {
			e = &execs[i];
			break;
		}
	if (!e)
		return fail(id, 1, "pocketvm-execd: too many commands at once (32)");
	if (len < 16 || p[len - 1] != '\0')
		return fail(id, 2, "pocketvm-execd: malformed start request");
	uid_t uid = get32(p);
	gid_t gid = get32(p + 4);
	uint32_t argc = get32(p + 8), envc = get32(p + 12);
	if (argc == 0 || argc > 65536 || envc > 65536)
		return fail(id, 2, "pocketvm-execd: malformed start request");
	char **strings = calloc(1 + argc + 1 + envc + 1, sizeof(char *));
	if (!strings)
		_exit(1);
	const char *s = (const char *)p + 16, *end = (const char *)p + len;
	uint32_t count = 0;
	while (s < end && count < 1 + argc + envc) {
		strings[count++] = (char *)s;
		s += strlen(s) + 1;
	}
	if (count != 1 + argc + envc || s != end) {
		free(strings);
		return fail(id, 2, "pocketvm-execd: malformed start request");
	}
	const char *cwd = strings[0];
	char **argv = calloc(argc + 1, sizeof(char *));
	char **envp = calloc(envc + 1, sizeof(char *));
	if (!argv || !envp)
		_exit(1);
	memcpy(argv, strings + 1, argc * sizeof(char *));
	memcpy(envp, strings + 1 + argc, envc * sizeof(char *));

	int in[2], out[2], err[2], report[2];
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(report, O_CLOEXEC)) {
		free(strings), free(argv), free(envp);
		return fail(id, 1, "pocketvm-execd: out of file descriptors");
	}
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		setsid();
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		const char *step = "setgid";
		if (setgroups(1, &gid) == 0 && setgid(gid) == 0 && (step = "setuid", setuid(uid) == 0)) {
			if (chdir(cwd) != 0)
				(void)!chdir("/");
			environ = envp;
			execvp(argv[0], argv);
			step = "exec";
		}
		int e = errno;
		char message[512];
		if (step[0] == 'e')
			snprintf(message, sizeof message, "%s: %s", argv[0], e == ENOENT ? "command not found" : strerror(e));
		else
			snprintf(message, sizeof message, "pocketvm-execd: %s: %s", step, strerror(e));
		/* One write: the code and the message arrive together. */
		unsigned char b[4 + sizeof message];
		size_t len = strlen(message);
		put32(b, e == ENOENT ? 127 : 126);
		memcpy(b + 4, message, len);
		(void)!write(report[1], b, 4 + len);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	close(report[1]);
	free(strings), free(argv), free(envp);
	if (pid < 0) {
		close(in[1]), close(out[0]), close(err[0]), close(report[0]);
		return fail(id, 1, "pocketvm-execd: cannot fork");
	}
	/* The report pipe closes on a successful exec; else it carries why not. */
	unsigned char why[4 + 512];
	ssize_t n = 0;
	for (;;) {
		ssize_t got = read(report[0], why + n, sizeof why - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += got;
	}
	close(report[0]);
	if (n >= 4) {
		waitpid(pid, NULL, 0);
		close(in[1]), close(out[0]), close(err[0]);
		why[n] = 0;
		return fail(id, get32(why), (char *)why + 4);
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	*e = (struct exec){ .used = 1, .id = id, .pid = pid, .in = in[1], .out = out[0], .err = err[0] };
}

static void stdin_data(struct exec *e, const unsigned char *p, uint32_t len)
{
	if (e->in < 0)
		return send_u32('A', e->id, len); /* stdin closed: dropped, but acknowledged */
	if (len == 0) {
		e->close_in = 1;
	} else {
		size_t keep = e->pending_len - e->pending_off;
		char *next = malloc(keep + len);
		if (!next)
			_exit(1);
		memcpy(next, e->pending + e->pending_off, keep);
		memcpy(next + keep, p, len);
		free(e->pending);
		e->pending = next;
		e->pending_len = keep + len;
		e->pending_off = 0;
	}
	if (e->close_in && e->pending_off == e->pending_len)
		close_fd(&e->in);
}

static void flush_stdin(struct exec *e)
{
	if (e->in < 0)
		return;
	size_t before = e->pending_off;
	while (e->pending_off < e->pending_len) {
		ssize_t n = write(e->in, e->pending + e->pending_off, e->pending_len - e->pending_off);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			/* EPIPE: the command stopped reading; the rest is dropped, as a pipe does. */
			e->pending_off = e->pending_len;
			close_fd(&e->in);
			break;
		}
		e->pending_off += n;
	}
	if (e->pending_off > before)
		send_u32('A', e->id, (uint32_t)(e->pending_off - before));
	if (e->in >= 0 && e->close_in && e->pending_off == e->pending_len)
		close_fd(&e->in);
}

static unsigned char *inbuf;
static size_t inlen;

static void handle_frame(char type, uint32_t id, const unsigned char *p, uint32_t len)
{
	struct exec *e = type == 'S' ? NULL : find(id);
	switch (type) {
	case 'S':
		start(id, p, len);
		break;
	case 'I':
		if (e) {
			stdin_data(e, p, len);
			flush_stdin(e);
		} else if (len) {
			send_u32('A', id, len);
		}
		break;
	case 'K':
		if (e && len == 4 && get32(p) > 0 && get32(p) < NSIG)
			kill(-e->pid, (int)get32(p));
		break;
	}
}

static void read_port(void)
{
	static size_t cap;
	if (cap - inlen < CHUNK) {
		cap = cap ? cap * 2 : 4 * CHUNK;
		inbuf = realloc(inbuf, cap);
		if (!inbuf)
			_exit(1);
	}
	ssize_t n = read(port, inbuf + inlen, cap - inlen);
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		/* The launcher closed its end (the session ended): hang up every command. */
		for (int i = 0; i < MAX_EXECS; i++)
			if (execs[i].used)
				kill(-execs[i].pid, SIGHUP);
		sleep(1);
		_exit(0);
	}
	if (n < 0)
		return;
	inlen += n;
	size_t off = 0;
	while (inlen - off >= 9) {
		uint32_t len = get32(inbuf + off);
		if (len > MAX_FRAME)
			_exit(2);
		if (inlen - off < 9 + len)
			break;
		handle_frame((char)inbuf[off + 4], get32(inbuf + off + 5), inbuf + off + 9, len);
		off += 9 + len;
	}
	memmove(inbuf, inbuf + off, inlen - off);
	inlen -= off;
}

static void pump(struct exec *e, int *fd, char type)
{
	static unsigned char buf[CHUNK];
	ssize_t n = read(*fd, buf, sizeof buf);
	if (n > 0)
		send_frame(type, e->id, buf, (uint32_t)n);
	else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		close_fd(fd);
	if (n > 0 && e->exited)
		e->exited_at = now_ms();
}

static void on_sigchld(int sig)
{
	(void)sig;
	int saved = errno;
	(void)!write(sigpipe_fds[1], "c", 1);
	errno = saved;
}

static void reap(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < MAX_EXECS; i++)
			if (execs[i].used && execs[i].pid == pid) {
				execs[i].exited = 1;
				execs[i].status = status;
				execs[i].exited_at = execs[i].exited_first = now_ms();
			}
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: pocketvm-execd PORT\n");
		return 2;
	}
	port = open(argv[1], O_RDWR | O_CLOEXEC);
	if (port < 0) {
		perror(argv[1]);
		return 1;
	}
	setenv("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", 1);
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK))
		return 1;
	struct sigaction sa = { .sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP };
	sigaction(SIGCHLD, &sa, NULL);

	for (;;) {
		struct pollfd fds[2 + MAX_EXECS * 3];
		struct {
			struct exec *e;
			int *fd;
			char type;
		} who[MAX_EXECS * 3];
		int nfds = 2, timeout = -1;
		fds[0] = (struct pollfd){ port, POLLIN, 0 };
		fds[1] = (struct pollfd){ sigpipe_fds[0], POLLIN, 0 };
		long long now = now_ms();
		for (int i = 0; i < MAX_EXECS; i++) {
			struct exec *e = &execs[i];
			if (!e->used)
				continue;
			if (e->exited) {
				/* 200 ms of silence, 2 s at most: a background writer cannot hold the exit back. */
				long long left = e->exited_at + LINGER_MS - now;
				if (e->exited_first + 10 * LINGER_MS - now < left)
					left = e->exited_first + 10 * LINGER_MS - now;
				if ((e->out < 0 && e->err < 0) || left <= 0) {
					finish(e);
					continue;
				}
				if (timeout < 0 || left < timeout)
					timeout = (int)left;
			}
			int *list[3] = { &e->out, &e->err, &e->in };
			char types[3] = { 'O', 'E', 'I' };
			for (int k = 0; k < 3; k++) {
				if (*list[k] < 0 || (k == 2 && e->pending_off == e->pending_len))
					continue;
				fds[nfds] = (struct pollfd){ *list[k], k == 2 ? POLLOUT : POLLIN, 0 };
				who[nfds - 2].e = e;
				who[nfds - 2].fd = list[k];
				who[nfds - 2].type = types[k];
				nfds++;
			}
		}
		if (poll(fds, nfds, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (fds[1].revents) {
			char drain[64];
			while (read(sigpipe_fds[0], drain, sizeof drain) > 0) {
			}
			reap();
		}
		for (int i = 2; i < nfds; i++) {
			if (!fds[i].revents || *who[i - 2].fd != fds[i].fd)
				continue;
			if (who[i - 2].type == 'I')
				flush_stdin(who[i - 2].e);
			else
				pump(who[i - 2].e, who[i - 2].fd, who[i - 2].type);
		}
		if (fds[0].revents)
			read_port();
	}
}
