// Package bird runs and controls BIRD 2, the BGP speaker of nodes and test
// routers: a client of its control socket (what birdc does), parsers for
// the replies the agent reads ("show protocols", "show bfd sessions"),
// configuration changes with check-then-configure semantics that keep the
// running configuration when BIRD rejects a new one, and a Daemon that
// starts BIRD detached, adopts it again after its supervisor restarts and
// reports when it exits.
package bird
