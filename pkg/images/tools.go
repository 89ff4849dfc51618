package images

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/openneco/neco/pkg/osimage"
)

// libraryDir is where the libraries go in an image: one of the dynamic
// loader's default directories (there is no /etc/ld.so.cache in the
// images).
const libraryDir = "/usr/lib/x86_64-linux-gnu"

// ToolFiles is the files that make the host's dynamically linked
// executables run in an image: each tool (image path → host path), every
// shared library they need, transitively (osimage.SharedLibraries; the
// multiarch ones in libraryDir), and their dynamic loader (at the path
// they name). Symbolic links on the host are followed: the image has
// regular files.
func ToolFiles(tools map[string]string) ([]File, error) {
	need := map[string]string{} // image path → host path
	for img, host := range tools {
		if !path.IsAbs(img) || path.Clean(img) != img {
			return nil, fmt.Errorf("images: tool %s: the image path must be absolute and clean", img)
		}
		need[img] = host
		libs, err := osimage.SharedLibraries(host)
		if err != nil {
			return nil, fmt.Errorf("images: tool %s: %w", host, err)
		}
		for _, lib := range libs {
			switch filepath.Dir(lib) {
			case "/lib/x86_64-linux-gnu", libraryDir:
				need[path.Join(libraryDir, filepath.Base(lib))] = lib
			default:
				need[lib] = lib
			}
		}
	}
	imgs := make([]string, 0, len(need))
	for img := range need {
		imgs = append(imgs, img)
	}
	sort.Strings(imgs)
	files := make([]File, 0, len(imgs))
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
