package sshdtest

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"golang.org/x/crypto/ssh"
)

func login(t *testing.T, s *Server) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.Signer)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestServer(t *testing.T) {
	s := Start(t)
	c := login(t, s)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("id -un")
	if err != nil || string(out) != s.User+"\n" {
		t.Fatalf("id -un: %q, %v", out, err)
	}

	// Restart ends the connection, and keeps address and keys.
	addr, key := s.Addr, s.HostKey.Marshal()
	s.Restart()
	if err := c.Wait(); err == nil {
		t.Log("connection ended cleanly")
	}
	if s.Addr != addr || !bytes.Equal(s.HostKey.Marshal(), key) {
		t.Error("address or host key changed")
	}
	login(t, s).Close()
}

func TestStat(t *testing.T) {
	ppid, start, ok := stat(os.Getpid())
	if !ok || ppid != os.Getppid() || start == "" {
		t.Errorf("stat(self) = %d, %q, %v; want parent %d", ppid, start, ok, os.Getppid())
	}
	if _, err := strconv.Atoi(start); err != nil {
		t.Errorf("start time %q", start)
	}
	if _, _, ok := stat(-1); ok {
		t.Error("stat(-1) ok")
	}
}
