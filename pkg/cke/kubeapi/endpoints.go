package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
)

// FieldManager is the field manager of what the engine writes by
// server-side apply itself (SetEndpoints).
const FieldManager = "cke"

// Labels of the Endpoints and EndpointSlice of a Service without selector,
// as the API server's own endpoint reconciler sets them.
const (
	// labelServiceName ties an EndpointSlice to its Service.
	labelServiceName = "kubernetes.io/service-name"
	// labelSkipMirror keeps the EndpointSlice mirroring controller from
	// making a second EndpointSlice out of the Endpoints.
	labelSkipMirror = "endpointslice.kubernetes.io/skip-mirror"
)

// endpointPortName is the name of the API servers' port in the
// default/kubernetes Service.
const endpointPortName = "https"

type endpoints struct {
	Subsets []struct {
		Addresses []struct {
			IP string `json:"ip"`
		} `json:"addresses"`
	} `json:"subsets"`
}

type endpointSlice struct {
	Endpoints []struct {
		Addresses  []string `json:"addresses"`
		Conditions struct {
			Ready *bool `json:"ready"`
		} `json:"conditions"`
	} `json:"endpoints"`
}

func endpointsPath(ns, name string) string {
	return "/api/v1/namespaces/" + url.PathEscape(ns) + "/endpoints/" + url.PathEscape(name)
}

func endpointSlicePath(ns, name string) string {
	return "/apis/discovery.k8s.io/v1/namespaces/" + url.PathEscape(ns) + "/endpointslices/" + url.PathEscape(name)
}

// Endpoints returns the sorted ready addresses of the Endpoints ns/name
// when the EndpointSlice ns/name lists the same ones; otherwise, or when
// either does not exist, it returns none, so that a caller comparing them
// with the addresses it wants calls SetEndpoints, which fixes both.
func (c *Client) Endpoints(ctx context.Context, ns, name string) ([]string, error) {
	if err := checkNamespacedName("endpoints", ns, name); err != nil {
		return nil, err
	}
	var ep endpoints
	if err := c.Get(ctx, endpointsPath(ns, name), &ep); err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var addrs []string
	for _, s := range ep.Subsets {
		for _, a := range s.Addresses {
			addrs = append(addrs, a.IP)
		}
	}
	var es endpointSlice
	if err := c.Get(ctx, endpointSlicePath(ns, name), &es); err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var sliceAddrs []string
	for _, e := range es.Endpoints {
		if e.Conditions.Ready == nil || *e.Conditions.Ready {
			sliceAddrs = append(sliceAddrs, e.Addresses...)
		}
	}
	slices.Sort(addrs)
	slices.Sort(sliceAddrs)
	if !slices.Equal(addrs, sliceAddrs) {
		return nil, nil
	}
	return addrs, nil
}

// SetEndpoints makes the Endpoints ns/name and the EndpointSlice ns/name
// (labelled kubernetes.io/service-name=name) list addrs, ready, on TCP
// port "https" port, as the API server's endpoint reconciler does for
// default/kubernetes. It creates them when they do not exist. The addresses
// are IP addresses, all IPv4 or all IPv6.
func (c *Client) SetEndpoints(ctx context.Context, ns, name string, addrs []string, port int) error {
	if err := checkNamespacedName("endpoints", ns, name); err != nil {
		return err
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("kubeapi: endpoints %s/%s: bad port %d", ns, name, port)
	}
	addressType := "IPv4"
	ips := make([]string, len(addrs))
	for i, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("kubeapi: endpoints %s/%s: %w", ns, name, err)
		}
		ip = ip.Unmap()
		if i == 0 && ip.Is6() {
			addressType = "IPv6"
		}
		if ip.Is6() != (addressType == "IPv6") {
			return fmt.Errorf("kubeapi: endpoints %s/%s: IPv4 and IPv6 addresses mixed", ns, name)
		}
		ips[i] = ip.String()
	}
	slices.Sort(ips)
	ips = slices.Compact(ips)

	type endpointPort struct {
		Name     string `json:"name"`
		Port     int    `json:"port"`
		Protocol string `json:"protocol"`
	}
	ports := []endpointPort{{Name: endpointPortName, Port: port, Protocol: "TCP"}}

	// Server-side apply creates or updates in one request, and removes the
	// addresses it set before and no longer lists.
	type address struct {
		IP string `json:"ip"`
	}
	subsets := []any{}
	if len(ips) > 0 {
		as := make([]address, len(ips))
		for i, ip := range ips {
			as[i] = address{IP: ip}
		}
		subsets = append(subsets, map[string]any{"addresses": as, "ports": ports})
	}
	ep := map[string]any{
		"apiVersion": "v1",
		"kind":       "Endpoints",
		"metadata": map[string]any{
			"name":      name,
			"namespace": ns,
			"labels":    map[string]string{labelSkipMirror: "true"},
		},
		"subsets": subsets,
	}
	if err := c.applyJSON(ctx, endpointsPath(ns, name), ep, FieldManager, true, nil); err != nil {
		return err
	}

	type endpoint struct {
		Addresses  []string        `json:"addresses"`
		Conditions map[string]bool `json:"conditions"`
	}
	eps := make([]endpoint, len(ips))
	for i, ip := range ips {
		eps[i] = endpoint{Addresses: []string{ip}, Conditions: map[string]bool{"ready": true}}
	}
	es := map[string]any{
		"apiVersion": "discovery.k8s.io/v1",
		"kind":       "EndpointSlice",
		"metadata": map[string]any{
			"name":      name,
			"namespace": ns,
			"labels":    map[string]string{labelServiceName: name},
		},
		"addressType": addressType,
		"endpoints":   eps,
		"ports":       ports,
	}
	return c.applyJSON(ctx, endpointSlicePath(ns, name), es, FieldManager, true, nil)
}

// applyJSON applies obj at path by server-side apply and decodes the
// answer into out, when out is not nil.
func (c *Client) applyJSON(ctx context.Context, path string, obj any, fieldManager string, force bool, out any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	q := url.Values{"fieldManager": {fieldManager}, "force": {fmt.Sprint(force)}}
	// JSON is YAML: the apply content type takes either.
	return c.Do(ctx, http.MethodPatch, path+"?"+q.Encode(), ContentApplyPatch, body, out)
}
