package units

import (
	"fmt"
	"path"
	"strings"
)

// StartEnvFile holds a unit's StartEnv on the node.
func (u *Unit) StartEnvFile() string { return path.Join(Dir(u.Service), "start.env") }

// SystemdUnit is the unit file of u (nil for a service whose unit the
// node's OS owns, like containerd).
func (u *Unit) SystemdUnit() []byte {
	if len(u.Command) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the Kubernetes engine (CKE); hash %s\n", u.Hash())
	fmt.Fprintf(&b, "[Unit]\nDescription=CKE %s\nAfter=network-online.target", u.Service)
	for _, a := range u.After {
		b.WriteString(" " + a)
	}
	b.WriteString("\n")
	for _, a := range u.After {
		b.WriteString("Wants=" + a + "\n")
	}
	b.WriteString("\n[Service]\n")
	for _, kv := range sortedEnv(u.Env) {
		b.WriteString("Environment=" + systemdQuote(kv) + "\n")
	}
	if len(u.StartEnv) > 0 {
		b.WriteString("EnvironmentFile=-" + u.StartEnvFile() + "\n")
	}
	args := make([]string, len(u.Command))
	for i, a := range u.Command {
		args[i] = systemdQuote(a)
	}
	b.WriteString("ExecStart=" + strings.Join(args, " ") + "\n")
	if u.Service == "rivers" {
		// HAProxy's master reloads its configuration without dropping
		// connections.
		b.WriteString("ExecReload=/bin/kill -USR2 $MAINPID\n")
	}
	b.WriteString(`Restart=always
RestartSec=3s
TimeoutStopSec=30s
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
`)
	return []byte(b.String())
}

// EnvFile renders env as an EnvironmentFile.
func EnvFile(env map[string]string) []byte {
	var b strings.Builder
	for _, kv := range sortedEnv(env) {
		k, v, _ := strings.Cut(kv, "=")
		b.WriteString(k + "=" + systemdQuote(v) + "\n")
	}
	return []byte(b.String())
}

// systemdQuote quotes one word for a unit file: specifiers (%) and
// variables ($) are taken literally, and words with spaces or quotes are
// double-quoted with C-style escapes.
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	s = strings.ReplaceAll(s, "$", "$$")
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
