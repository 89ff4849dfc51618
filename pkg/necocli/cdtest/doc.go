// Package cdtest tests the continuous delivery commands of neco (status,
// config, recover) end to end: the real command tree against an embedded
// etcd. It holds no code of its own.
package cdtest
