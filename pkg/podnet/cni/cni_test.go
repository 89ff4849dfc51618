package cni

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	good := `{"command":"ADD","containerID":"c1","netns":"/run/netns/x","ifName":"eth0","podNamespace":"ns","podName":"p"}`
	req, err := DecodeRequest(strings.NewReader(good))
	if err != nil || req.Key() != "c1/eth0" || req.PodNamespace != "ns" {
		t.Fatalf("good request: %+v, %v", req, err)
	}
	for name, body := range map[string]string{
		"not JSON":            "{",
		"unknown field":       `{"command":"ADD","containerID":"c","netns":"/n","ifName":"eth0","extra":1}`,
		"unknown command":     `{"command":"GC","containerID":"c","ifName":"eth0"}`,
		"no container":        `{"command":"DEL","ifName":"eth0"}`,
		"long interface name": `{"command":"DEL","containerID":"c","ifName":"0123456789abcdef"}`,
		"ADD without netns":   `{"command":"ADD","containerID":"c","ifName":"eth0"}`,
	} {
		if _, err := DecodeRequest(strings.NewReader(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := DecodeRequest(strings.NewReader(`{"command":"DEL","containerID":"c","ifName":"eth0"}`)); err != nil {
		t.Errorf("DEL without netns (the spec allows it): %v", err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"command":"ADD","containerID":"c1","netns":"/run/netns/x","ifName":"eth0"}`))
	f.Add([]byte(`{"command":"STATUS"}`))
	f.Add([]byte(`{"command":"DEL","containerID":"\u0000","ifName":"e"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		// What is accepted survives a round trip and still validates.
		out, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeRequest(bytes.NewReader(out))
		if err != nil || again != req {
			t.Fatalf("round trip of %q: %+v, %v", data, again, err)
		}
	})
}

func TestPodArgs(t *testing.T) {
	ns, name := podArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=x")
	if ns != "default" || name != "web-0" {
		t.Errorf("podArgs = %q, %q", ns, name)
	}
	if ns, name := podArgs(""); ns != "" || name != "" {
		t.Errorf("empty CNI_ARGS: %q, %q", ns, name)
	}
}

func FuzzParseConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"podnet","type":"podnet","socket":"/run/p.sock"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConf(data)
		if err == nil && c.Socket == "" {
			t.Fatal("accepted configuration without a socket")
		}
		podArgs(string(data))
	})
}
