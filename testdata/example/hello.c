/* hello: the built-in example's app (`make example`), a static binary so the example image needs
 * no shell or libc: prints "hello, NAME" and answers every HTTP request on 127.0.0.1:8080 (the
 * example manifest's ingress port) with the same line, until SIGTERM. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_term(int sig)
{
	(void)sig;
	static const char bye[] = "hello: SIGTERM, stopping\n";
	write(STDOUT_FILENO, bye, sizeof(bye) - 1);
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "world";
	signal(SIGTERM, on_term);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("hello, %s\n", name);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 16) < 0) {
		perror("hello: 127.0.0.1:8080");
		return 1;
	}
	printf("hello: serving http://127.0.0.1:8080/\n");
	for (;;) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			continue;
		char req[4096];
		(void)read(c, req, sizeof(req)); /* the request head; its content does not matter */
		char body[256], resp[512];
		int blen = snprintf(body, sizeof(body), "hello, %s\n", name);
		int rlen = snprintf(resp, sizeof(resp),
		                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
		                    "Connection: close\r\n\r\n%s",
		                    blen, body);
		(void)write(c, resp, (size_t)rlen);
		close(c);
	}
}
