// Package netns runs code inside a Linux network namespace and makes new,
// anonymous ones.
//
// A namespace is named by an open file descriptor; 0 means "the namespace
// this process runs in". Sockets (packet, netlink, TCP) stay in the namespace
// they were created in, so opening them inside Do is enough: they can be used
// from any goroutine afterwards.
//
// New makes namespaces that are not bound to a name under /var/run/netns:
// they live as long as a descriptor or a socket refers to them, so a crashed
// synprobe leaves none behind.
package netns
