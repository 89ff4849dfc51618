// Package osimage builds the small OS the network boot test and the
// virtual data center's QEMU machines boot from sabakan: this host's
// Debian kernel and an initramfs holding a static busybox, the virtio
// network modules, the scripts that stand in for a real OS and the
// programs they run (with the shared libraries those need).
package osimage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
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

// Spec is what an initramfs holds besides its skeleton (/bin, /dev with
// the console, /proc, /sys, /tmp, /etc, /lib/modules).
type Spec struct {
	// Busybox is a statically linked busybox, installed at /bin/busybox:
	// nothing in the archive could load a dynamic one.
	Busybox string
	// ModDir is the kernel's module directory (/lib/modules/<version>).
	ModDir string
	// Modules are the kernel modules to load at boot; they go to
	// /lib/modules with their dependencies, and their file names, in load
	// order, to /modules.order. NetworkModules when nil.
	Modules []string
	// Scripts are executables: path in the archive → content.
	Scripts map[string]string
	// Programs are host executables: path in the archive → host path. A
	// dynamically linked one brings its program interpreter and the shared
	// libraries it needs (recursively), each at the path the host has it,
	// so the interpreter finds them in its default directories.
	Programs map[string]string
	// Zstd compresses the archive with the host's zstd (level 6) instead
	// of gzip: Linux unpacks it several times faster, which counts for a
	// large initramfs under TCG. The kernel recognises either by its magic
	// number, whatever the file is called.
	Zstd bool
}

// Initramfs returns a gzipped newc cpio archive with busybox at
// /bin/busybox, NetworkModules and their dependencies from modDir under
// /lib/modules (file names listed in load order in /modules.order), and
// scripts (path in the archive → content) as executables. busybox must
// be statically linked: nothing else in the archive could load it.
func Initramfs(busybox, modDir string, scripts map[string]string) ([]byte, error) {
	return Spec{Busybox: busybox, ModDir: modDir, Scripts: scripts}.Build()
}

// Build returns the initramfs as a compressed newc cpio archive.
func (s Spec) Build() ([]byte, error) {
	if err := CheckStatic(s.Busybox); err != nil {
		return nil, err
	}
	bb, err := os.ReadFile(s.Busybox)
	if err != nil {
		return nil, err
	}
	modules := s.Modules
	if modules == nil {
		modules = NetworkModules
	}
	order, err := moduleOrder(filepath.Join(s.ModDir, "modules.dep"), modules...)
	if err != nil {
		return nil, err
	}

	c := &cpio{dirs: map[string]bool{}}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "lib", "lib/modules"} {
		c.dir(d)
	}
	c.entry("dev/console", 0o020600, nil, 5, 1)
	c.file("bin/busybox", 0o100755, bb)
	for _, name := range slices.Sorted(maps.Keys(s.Scripts)) {
		c.file(name, 0o100755, []byte(s.Scripts[name]))
	}
	files := map[string]string{} // path in the archive → host file
	for _, name := range slices.Sorted(maps.Keys(s.Programs)) {
		files[name] = s.Programs[name]
		libs, err := SharedLibraries(s.Programs[name])
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			files[strings.TrimPrefix(l, "/")] = l
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data, err := os.ReadFile(files[name])
		if err != nil {
			return nil, err
		}
		c.file(name, 0o100755, data)
	}
	var names []string
	for _, m := range order {
		data, err := os.ReadFile(filepath.Join(s.ModDir, m))
		if err != nil {
			return nil, err
		}
		name := filepath.Base(m)
		c.file("lib/modules/"+name, 0o100644, data)
		names = append(names, name)
	}
	c.file("modules.order", 0o100644, []byte(strings.Join(names, "\n")+"\n"))
	c.entry("TRAILER!!!", 0, nil, 0, 0)

	if s.Zstd {
		var stderr bytes.Buffer
		cmd := exec.Command("zstd", "-q", "-6", "-c")
		cmd.Stdin, cmd.Stderr = &c.buf, &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("osimage: zstd (make setup installs it): %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return out, nil
	}
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

// libraryDirs are where Debian's dynamic loader looks for libraries
// without an ld.so.cache, in its order.
var libraryDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// SharedLibraries returns what the executable at path needs to run: its
// program interpreter and the shared libraries it needs, directly or
// through other libraries, as the paths of the loader's default
// directories where the host has them. A static executable needs none.
func SharedLibraries(path string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var visit func(file string, top bool) error
	visit = func(file string, top bool) error {
		f, err := elf.Open(file)
		if err != nil {
			return fmt.Errorf("osimage: %w", err)
		}
		defer f.Close()
		if top {
			for _, p := range f.Progs {
				if p.Type != elf.PT_INTERP {
					continue
				}
				b, err := io.ReadAll(p.Open())
				if err != nil {
					return fmt.Errorf("osimage: %s: program interpreter: %w", file, err)
				}
				interp := string(bytes.TrimRight(b, "\x00"))
				seen[filepath.Base(interp)] = true
				out = append(out, interp)
			}
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("osimage: %s: %w", file, err)
		}
		for _, lib := range needed {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			found := ""
			for _, d := range libraryDirs {
				if _, err := os.Stat(filepath.Join(d, lib)); err == nil {
					found = filepath.Join(d, lib)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("osimage: %s needs %s, which is in none of %s", file, lib, strings.Join(libraryDirs, " "))
			}
			out = append(out, found)
			if err := visit(found, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(path, true); err != nil {
		return nil, err
	}
	return out, nil
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
	buf  bytes.Buffer
	ino  int
	dirs map[string]bool
}

// dir adds a directory and its parents, once each: the kernel creates
// no parent directories when it unpacks.
func (c *cpio) dir(name string) {
	if name == "." || name == "/" || c.dirs[name] {
		return
	}
	c.dir(filepath.Dir(name))
	c.dirs[name] = true
	c.entry(name, 0o040755, nil, 0, 0)
}

// file adds a file after its directories.
func (c *cpio) file(name string, mode uint32, data []byte) {
	c.dir(filepath.Dir(name))
	c.entry(name, mode, data, 0, 0)
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
