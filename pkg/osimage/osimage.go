// Package osimage builds the small OS the network boot test and the
// virtual data center's QEMU machines boot from sabakan: this host's
// Debian kernel and an initramfs holding a static busybox, the virtio
// network modules and the scripts that stand in for a real OS.
package osimage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Kernel returns the newest Debian kernel installed on this host
// (linux-image-amd64) and its version, which names its module directory
// /lib/modules/<version>.
func Kernel() (path, version string, err error) {
	files, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Strings(files)
	if len(files) == 0 {
		return "", "", errors.New("osimage: no Debian kernel in /boot (make setup installs linux-image-amd64)")
	}
	path = files[len(files)-1]
	return path, strings.TrimPrefix(filepath.Base(path), "vmlinuz-"), nil
}

// NetworkModules are the kernel modules a QEMU machine needs for its NIC.
var NetworkModules = []string{"virtio_pci", "virtio_net"}

// Initramfs returns a gzipped newc cpio archive with busybox at
// /bin/busybox, NetworkModules and their dependencies from modDir under
// /lib/modules (file names listed in load order in /modules.order), and
// scripts (path in the archive → content) as executables. busybox must
// be statically linked: nothing else in the archive could load it.
func Initramfs(busybox, modDir string, scripts map[string]string) ([]byte, error) {
	if err := CheckStatic(busybox); err != nil {
		return nil, err
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	order, err := moduleOrder(filepath.Join(modDir, "modules.dep"), NetworkModules...)
	if err != nil {
		return nil, err
	}

	c := &cpio{}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "lib", "lib/modules"} {
		c.entry(d, 0o040755, nil, 0, 0)
	}
	c.entry("dev/console", 0o020600, nil, 5, 1)
	c.entry("bin/busybox", 0o100755, bb, 0, 0)
	for _, name := range slices.Sorted(maps.Keys(scripts)) {
		c.entry(name, 0o100755, []byte(scripts[name]), 0, 0)
	}
	var names []string
	for _, m := range order {
		data, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return nil, err
		}
		name := filepath.Base(m)
		c.entry("lib/modules/"+name, 0o100644, data, 0, 0)
		names = append(names, name)
	}
	c.entry("modules.order", 0o100644, []byte(strings.Join(names, "\n")+"\n"), 0, 0)
	c.entry("TRAILER!!!", 0, nil, 0, 0)

	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(c.buf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// CheckStatic fails unless path is an ELF executable without a program
// interpreter.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("osimage: busybox %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("osimage: %s is dynamically linked: the initramfs needs a static busybox (busybox-static)", path)
		}
	}
	return nil
}

// cpio writes the newc format the kernel unpacks.
type cpio struct {
	buf bytes.Buffer
	ino int
}

func (c *cpio) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor int) {
	c.ino++
	nlink := 1
	if mode&0o040000 != 0 {
		nlink = 2
	}
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *cpio) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

// moduleOrder returns the module files to load, dependencies first, for
// the named modules (built-in ones are absent from modules.dep).
func moduleOrder(depFile string, modules ...string) ([]string, error) {
	f, err := os.Open(depFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{} // module file → the files it needs
	byName := map[string]string{} // module name → its file
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(rest)
		byName[strings.TrimSuffix(filepath.Base(file), ".ko")] = file
	}
	var order []string
	var visit func(string)
	visit = func(file string) {
		if slices.Contains(order, file) {
			return
		}
		for _, d := range deps[file] {
			visit(d)
		}
		order = append(order, file)
	}
	for _, m := range modules {
		if file, ok := byName[m]; ok {
			visit(file)
		}
	}
	return order, sc.Err()
}
