// Package sshdtest runs a real OpenSSH server (Debian package
// openssh-server) for tests of code that reaches nodes by SSH. Each Server
// listens on 127.0.0.1 with its own host key and accepts one client key for
// the user running the tests. Without sshd the test is skipped, or failed
// under CI=true.
package sshdtest

import (
	"bufio"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/openneco/neco/pkg/testutil"
)

// startTimeout bounds how long sshd may take to accept connections.
const startTimeout = 60 * time.Second

// Options configure a Server; the zero value is a new server with new keys
// on a free port.
type Options struct {
	// Addr is the address to listen on, 127.0.0.1:PORT, for a server that
	// replaces a stopped one; empty picks a free port.
	Addr string
	// HostKeys are the server's host keys; empty means one new ed25519
	// key.
	HostKeys []crypto.Signer
	// Signer is the client key the server accepts; nil means a new
	// ed25519 key.
	Signer ssh.Signer
}

// Server is a running sshd.
type Server struct {
	// Addr is where sshd listens, 127.0.0.1:PORT.
	Addr string
	// User is the user to log in as: the one running the tests.
	User string
	// Signer is the client key sshd accepts for User.
	Signer ssh.Signer
	// HostKey is sshd's first host key; HostKeys all of them.
	HostKey  ssh.PublicKey
	HostKeys []ssh.PublicKey

	t       testing.TB
	sshd    string
	dir     string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts an sshd with new keys on a free port; it is stopped when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts an sshd as o says; it is stopped when the test ends,
// and its log is shown if the test failed.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	sshd := findSSHD(t)
	if os.Geteuid() == 0 {
		// sshd running as root needs its privilege separation directory,
		// which the system's service manager normally creates.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, sshd: sshd, dir: t.TempDir(), User: u.Username, Signer: o.Signer}
	s.logPath = filepath.Join(s.dir, "sshd.log")
	if s.Signer == nil {
		s.Signer = newSigner(t)
	}
	hostKeys := o.HostKeys
	if len(hostKeys) == 0 {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		hostKeys = []crypto.Signer{k}
	}
	var conf strings.Builder
	for i, k := range hostKeys {
		block, err := ssh.MarshalPrivateKey(k, "sshdtest")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(s.dir, fmt.Sprintf("host_key_%d", i))
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		pub, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		s.HostKeys = append(s.HostKeys, pub)
		fmt.Fprintf(&conf, "HostKey %q\n", p)
	}
	s.HostKey = s.HostKeys[0]
	authorized := filepath.Join(s.dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(s.Signer.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&conf, "AuthorizedKeysFile %q\n", authorized)
	conf.WriteString(staticConfig)

	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil {
				t.Logf("sshd log:\n%s", b)
			}
		}
	})
	for attempt := 1; ; attempt++ {
		s.Addr = o.Addr
		if s.Addr == "" {
			s.Addr = freeAddr(t)
		}
		config := filepath.Join(s.dir, "sshd_config")
		text := fmt.Sprintf("ListenAddress %s\n%s", s.Addr, conf.String())
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		err := s.start()
		if err == nil {
			return s
		}
		// Another process may have taken the free port meanwhile.
		if o.Addr != "" || !errors.Is(err, errAddrInUse) || attempt == 5 {
			t.Fatalf("sshdtest: %v", err)
		}
	}
}

const staticConfig = `PidFile none
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
PrintLastLog no
AllowTcpForwarding no
X11Forwarding no
LogLevel VERBOSE
`

func findSSHD(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("sshd"); err == nil {
		return p
	}
	const p = "/usr/sbin/sshd" // not on PATH for ordinary users
	if _, err := os.Stat(p); err != nil {
		testutil.Missing(t, "sshd not found (Debian package openssh-server; make setup installs it)")
	}
	return p
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var errAddrInUse = errors.New("address already in use")

// start starts sshd with the config in s.dir and waits until it answers.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// sshd re-executes itself for every connection: it needs an absolute
	// path.
	cmd := exec.Command(s.sshd, "-D", "-e", "-f", filepath.Join(s.dir, "sshd_config"))
	cmd.Stdout, cmd.Stderr = logf, logf
	testutil.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(s.logPath)
			if strings.Contains(string(b), "Address already in use") {
				return fmt.Errorf("sshd on %s: %w", s.Addr, errAddrInUse)
			}
			return fmt.Errorf("sshd on %s exited: %v\n%s", s.Addr, cmd.ProcessState, b)
		default:
		}
		if answers(s.Addr) {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		if time.Now().After(deadline) {
			killTree(cmd.Process.Pid)
			<-exited
			return fmt.Errorf("sshd on %s did not answer within %s", s.Addr, startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answers reports whether an SSH server answers on addr.
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-OpenSSH")
}

// Stop kills sshd, its connections and every command they run, the way a
// node going down ends them. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	killTree(s.cmd.Process.Pid)
	<-s.exited
	s.cmd, s.exited = nil, nil
}

// Restart stops sshd and starts it again on the same address with the
// same keys, like a node that rebooted.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("sshdtest: restart: %v", err)
	}
}

// Pause freezes sshd, its connections and their commands (SIGSTOP), like
// a node that hangs with its TCP connections still open; resume thaws
// them.
func (s *Server) Pause() (resume func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return func() {}
	}
	procs := freezeTree(s.cmd.Process.Pid)
	return func() {
		for _, p := range procs {
			p.signal(sigCont)
		}
	}
}
