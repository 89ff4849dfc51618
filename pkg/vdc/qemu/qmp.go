package qemu

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// QMP runs one command on a QEMU monitor socket (QMP) and returns its
// "return" value.
func QMP(socket, command string, args map[string]any) (json.RawMessage, error) {
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("qemu: qmp: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	read := func() (map[string]json.RawMessage, error) {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return nil, fmt.Errorf("qemu: qmp: %w", err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(line, &m); err != nil {
				return nil, fmt.Errorf("qemu: qmp: %w", err)
			}
			if _, ok := m["event"]; ok {
				continue
			}
			return m, nil
		}
	}
	if _, err := read(); err != nil { // greeting
		return nil, err
	}
	cmd := map[string]any{"execute": command}
	if len(args) > 0 {
		cmd["arguments"] = args
	}
	for _, c := range []map[string]any{{"execute": "qmp_capabilities"}, cmd} {
		b, _ := json.Marshal(c)
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return nil, fmt.Errorf("qemu: qmp: %w", err)
		}
		m, err := read()
		if err != nil {
			return nil, err
		}
		if e, ok := m["error"]; ok {
			return nil, fmt.Errorf("qemu: qmp %s: %s", c["execute"], e)
		}
		if c["execute"] == command {
			return m["return"], nil
		}
	}
	return nil, nil
}
