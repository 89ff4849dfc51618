package images

import (
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// librarySearchPath is where ToolFiles finds the shared libraries an
// executable needs: Debian's multiarch directories, as the dynamic loader
// searches them when there is no /etc/ld.so.cache (there is none in the
// images).
var librarySearchPath = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"}

// libraryDir is where the libraries go in an image: one of the loader's
// default directories.
const libraryDir = "/usr/lib/x86_64-linux-gnu"

// ToolFiles is the files that make the host's dynamically linked
// executables run in an image: each tool (image path → host path), every
// shared library they need, transitively (in libraryDir, under the name the
// executables ask for), and their dynamic loader (at the path they name).
// Symbolic links on the host are followed: the image has regular files.
func ToolFiles(tools map[string]string) ([]File, error) {
	var files []File
	need := map[string]string{} // image path → host path
	var queue []string
	for img, host := range tools {
		if !path.IsAbs(img) || path.Clean(img) != img {
			return nil, fmt.Errorf("images: tool %s: the image path must be absolute and clean", img)
		}
		need[img] = host
		queue = append(queue, img)
	}
	for len(queue) > 0 {
		img := queue[0]
		queue = queue[1:]
		deps, err := elfNeeds(need[img])
		if err != nil {
			return nil, fmt.Errorf("images: tool %s: %w", need[img], err)
		}
		for depImg, depHost := range deps {
			if _, ok := need[depImg]; !ok {
				need[depImg] = depHost
				queue = append(queue, depImg)
			}
		}
	}
	imgs := make([]string, 0, len(need))
	for img := range need {
		imgs = append(imgs, img)
	}
	sort.Strings(imgs)
	for _, img := range imgs {
		real, err := filepath.EvalSymlinks(need[img])
		if err != nil {
			return nil, fmt.Errorf("images: %w", err)
		}
		fi, err := os.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("images: %w", err)
		}
		files = append(files, HostFile(img, fi.Mode().Perm(), real))
	}
	return files, nil
}

// elfNeeds reads an ELF file's dynamic loader and DT_NEEDED libraries and
// returns where they go in an image and where they are on the host. A
// static executable needs nothing.
func elfNeeds(host string) (map[string]string, error) {
	f, err := elf.Open(host)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string]string{}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("reading its interpreter: %w", err)
		}
		interp := strings.TrimRight(string(b), "\x00")
		deps[interp] = interp
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	for _, lib := range libs {
		if strings.Contains(lib, "/") {
			return nil, fmt.Errorf("needs %s by path, not by name", lib)
		}
		found := ""
		for _, dir := range librarySearchPath {
			if _, err := os.Stat(filepath.Join(dir, lib)); err == nil {
				found = filepath.Join(dir, lib)
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("needs %s, found in none of %v", lib, librarySearchPath)
		}
		deps[path.Join(libraryDir, lib)] = found
	}
	return deps, nil
}
