// Package kubeapi is the Kubernetes engine's client of the Kubernetes API
// server: a small REST client on net/http, so that the engine does not
// depend on k8s.io/client-go (the Kubernetes module lives apart, in
// tools/kubernetes).
//
// A Client authenticates with a client certificate, tries its API servers
// in turn when one cannot be reached (Config.Servers), bounds every
// response and turns the API's Status objects into *APIError (IsNotFound,
// IsConflict, IsAlreadyExists).
//
// On top of the generic Get and Do it has what the engine needs, with
// structs of its own holding only the fields it uses:
//
//   - Nodes, PatchNodeMetadata and DeleteNode for Node objects;
//   - Endpoints and SetEndpoints for the default/kubernetes Endpoints and
//     EndpointSlice, which the engine maintains itself because its API
//     servers run with --endpoint-reconciler-type=none;
//   - Apply, GetObject and Delete for objects of any kind, found by API
//     discovery (so kinds added by a CustomResourceDefinition work too) and
//     applied with server-side apply;
//   - Readyz, and Kubeconfig to write kubeconfig files.
//
// Package kubetest runs a real etcd and kube-apiserver for tests.
package kubeapi
