// Package sabakan feeds the engine from the inventory: it asks sabakan
// (GraphQL searchMachines, as the reference engine does) for the machines
// and their states, and generates cluster.yml from a template by pure
// rules (Generate): control planes spread across racks, every healthy
// unused machine a worker, failed control planes replaced one at a time,
// retired workers removed while enough remain, machine states as taints.
//
// The engine runs the generator when it has nothing else to do, so one
// change of the cluster settles before the next one is made.
package sabakan
