package nodeexec

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/crypto/ssh"
)

// HostKeyStore keeps the host key pinned for each node. addr is always in
// the form CanonicalAddr returns; keys are in SSH wire format
// (ssh.PublicKey.Marshal). The engine implements it over etcd.
type HostKeyStore interface {
	// Lookup returns the key pinned for addr; ok is false when there is
	// none.
	Lookup(addr string) (key []byte, ok bool, err error)
	// Pin records key as addr's key if addr has none yet. If addr already
	// has one, Pin must leave it unchanged (an etcd implementation creates
	// the key in a transaction only if it is absent): Dial looks the key up
	// again after pinning and refuses a node whose key lost that race.
	Pin(addr string, key []byte) error
}

// HostKeyChangedError is a node offering a host key other than the one
// pinned for its address.
type HostKeyChangedError struct {
	Addr string
	// Want and Got are SHA256 fingerprints ("SHA256:…") of the pinned
	// and the offered key.
	Want, Got string
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("host key changed: pinned %s, offered %s; "+
		"if the machine was reinstalled, forget its key: ckecli ssh forget %s "+
		"(otherwise someone may be intercepting the connection)",
		e.Want, e.Got, forgetArg(e.Addr))
}

func hostKeyChanged(addr string, pinned []byte, offered ssh.PublicKey) *HostKeyChangedError {
	want := "(unparsable key)"
	if k, err := ssh.ParsePublicKey(pinned); err == nil {
		want = ssh.FingerprintSHA256(k)
	}
	return &HostKeyChangedError{Addr: addr, Want: want, Got: ssh.FingerprintSHA256(offered)}
}

// hostKeyAlgorithms are the host key algorithms that can prove possession
// of key: a node offering several host keys must be asked for the pinned
// one, not whichever type the client prefers.
func hostKeyAlgorithms(key ssh.PublicKey) []string {
	if key.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{key.Type()}
}

// pinKey trusts offered on first use: it pins the key unless another one
// got pinned meanwhile, which it reports as a change.
func pinKey(store HostKeyStore, addr string, offered ssh.PublicKey) error {
	key := offered.Marshal()
	if err := store.Pin(addr, key); err != nil {
		return fmt.Errorf("pin host key: %w", err)
	}
	pinned, ok, err := store.Lookup(addr)
	switch {
	case err != nil:
		return fmt.Errorf("look up host key: %w", err)
	case !ok:
		return fmt.Errorf("host key store lost the key just pinned")
	case !bytes.Equal(pinned, key):
		return hostKeyChanged(addr, pinned, offered)
	}
	return nil
}

// MemoryHostKeys is a HostKeyStore in memory, for tests and tools. The
// zero value is empty and ready to use; it is safe for concurrent use.
type MemoryHostKeys struct {
	mu   sync.Mutex
	keys map[string][]byte
}

// Lookup implements HostKeyStore.
func (m *MemoryHostKeys) Lookup(addr string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[addr]
	return slices.Clone(k), ok, nil
}

// Pin implements HostKeyStore: the first key pinned for addr stays.
func (m *MemoryHostKeys) Pin(addr string, key []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[addr]; ok {
		return nil
	}
	if m.keys == nil {
		m.keys = map[string][]byte{}
	}
	m.keys[addr] = slices.Clone(key)
	return nil
}

// Forget removes the key pinned for addr, as for a reinstalled machine.
func (m *MemoryHostKeys) Forget(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, addr)
}
