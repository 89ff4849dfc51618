// Package installer builds the boot server's operating system: a UEFI
// disk image of the data center's Debian tree (the one the virtual data
// center's machines boot, see pkg/vdc/menu) with this release's neco
// package installed, its services enabled and waiting for neco setup, the
// BGP node agent for the network, chrony, an operator account with SSH
// keys, and no identity: rack, index and serial come at first boot from a
// seed (pkg/firstboot). Nothing is mounted: the root file system is made
// with mkfs.ext4 -d, the EFI system partition with mkfs.vfat and mtools,
// the partition table with sfdisk on a plain file. The same inputs give
// the same image, byte for byte. See docs/installer.md.
package installer

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/vdc/rootfs"
)

//go:embed files
var files embed.FS

// Options of Build.
type Options struct {
	// Tree is the Debian tree to install (menu.TreeSpec: the virtual data
	// center's machines boot the same); it must hold linux-image-amd64,
	// systemd-boot-efi, udev, chrony, sudo and dosfstools.
	Tree rootfs.Spec
	// CacheDir holds the cached trees (rootfs.DefaultCacheDir).
	CacheDir string
	// Deb is the neco package installed in the image.
	Deb string
	// Out is the image file written.
	Out string
	// IPAM is the site's IPAM configuration; sabakan's reference one when
	// nil. The first-boot identity is checked against it.
	IPAM *sabakan.IPAMConfig
	// User is the operator account (no password, sudo, SSH keys only).
	User string
	// SSHKeys are authorized_keys lines for User; more can come with the
	// seed at first boot.
	SSHKeys []string
	// NTPServers are chrony's servers; chrony's Debian pool when empty.
	NTPServers []string
	// RootSize is the root partition's size; when 0, what the tree needs
	// and a quarter more. The partition grows over the disk at first boot.
	RootSize int64
	// Epoch is the time every file is clamped to (SOURCE_DATE_EPOCH).
	Epoch time.Time
	// Log receives progress.
	Log io.Writer
}

// Result describes a built image.
type Result struct {
	Path      string        `json:"path"`
	Size      int64         `json:"size"`
	Allocated int64         `json:"allocated"`
	SHA256    string        `json:"sha256"`
	Kernel    string        `json:"kernel"`
	Layout    Layout        `json:"layout"`
	TreeKey   string        `json:"tree"`
	TreeBuilt bool          `json:"tree-built"`
	Elapsed   time.Duration `json:"elapsed"`
}

// ESPSize is the size of the EFI system partition.
const ESPSize = 256 * mib

var reUser = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
var reNTP = regexp.MustCompile(`^[A-Za-z0-9.:-]{1,253}$`)

func (o *Options) validate() error {
	if o.Deb == "" || o.Out == "" {
		return errors.New("installer: the neco package and the output file are required")
	}
	if !strings.HasSuffix(o.Deb, ".deb") {
		return fmt.Errorf("installer: %s is not a .deb", o.Deb)
	}
	if o.User == "" {
		o.User = "neco"
	}
	if !reUser.MatchString(o.User) || o.User == "root" {
		return fmt.Errorf("installer: user name %q: want a lower-case login name other than root", o.User)
	}
	for _, k := range o.SSHKeys {
		if strings.ContainsAny(k, "\n\r") || len(strings.Fields(k)) < 2 {
			return fmt.Errorf("installer: SSH key %.40q is not one authorized_keys line", k)
		}
	}
	for _, s := range o.NTPServers {
		if !reNTP.MatchString(s) {
			return fmt.Errorf("installer: NTP server %q is not a host name or address", s)
		}
	}
	if o.IPAM == nil {
		o.IPAM = sabakan.ReferenceIPAM()
	}
	if err := o.IPAM.Validate(); err != nil {
		return fmt.Errorf("installer: IPAM: %w", err)
	}
	if o.Epoch.IsZero() {
		return errors.New("installer: no epoch (SOURCE_DATE_EPOCH)")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Build makes the image. The work happens in a directory beside Out,
// removed at the end; Out is replaced only by a complete image.
func Build(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	err := o.validate()
	if err != nil {
		return nil, err
	}
	for _, tool := range []string{"dpkg", "mkfs.ext4", "mkfs.vfat", "mcopy", "mmd", "sfdisk", "useradd"} {
		if _, err = exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("installer: %s not found (make setup installs e2fsprogs, dosfstools, mtools, fdisk)", tool)
		}
	}
	if o.Tree.Mirror == "" {
		if o.Tree.Mirror, err = rootfs.AptMirror("/", o.Tree.Suite); err != nil {
			return nil, err
		}
	}
	tree, built, err := rootfs.Ensure(ctx, o.CacheDir, o.Tree, o.Log)
	if err != nil {
		return nil, err
	}
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Dir(o.Out), ".installer-")
	if err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	defer func() {
		rootfs.UnmountUnder(work)
		os.RemoveAll(work)
	}()
	b := &builder{o: o, work: work, root: filepath.Join(work, "root")}
	b.env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(o.Epoch.Unix(), 10), "LC_ALL=C")
	if err := b.seed(o.Tree.Key()); err != nil {
		return nil, err
	}
	steps := []struct {
		what string
		f    func(context.Context) error
	}{
		{"copy the tree " + filepath.Base(tree), func(ctx context.Context) error { return b.run(ctx, "cp", "-a", tree+"/.", b.root+"/") }},
		{"install " + filepath.Base(o.Deb), b.installDeb},
		{"configure", b.configure},
		{"clamp times", func(context.Context) error { return clampTimes(b.root, b.o.Epoch) }},
		{"root file system", b.rootFS},
		{"EFI system partition", b.esp},
		{"disk", b.disk},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.f(ctx); err != nil {
			return nil, fmt.Errorf("installer: %s: %w", s.what, err)
		}
		fmt.Fprintf(o.Log, "installer: %s (%s)\n", s.what, time.Since(t0).Round(100*time.Millisecond))
	}
	if err := os.Rename(b.image, o.Out); err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	r := &Result{Path: o.Out, Size: b.layout.Size, Kernel: b.kernel, Layout: b.layout, TreeKey: o.Tree.Key(), TreeBuilt: built}
	r.SHA256, r.Allocated, err = digest(o.Out)
	if err != nil {
		return nil, err
	}
	r.Elapsed = time.Since(start)
	return r, nil
}

type builder struct {
	o                      Options
	work                   string
	root                   string
	env                    []string
	ids                    []byte // what the identifiers derive from
	kernel                 string // kernel version
	layout                 Layout
	rootImg, espImg, image string
}

// seed hashes every input into the identifiers' seed.
func (b *builder) seed(treeKey string) error {
	h := sha256.New()
	f, err := os.Open(b.o.Deb)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	ipam, _ := json.Marshal(b.o.IPAM)
	fmt.Fprintf(h, "\n%s\n%s\n%s\n%q\n%q\n%d\n%d\n", treeKey, ipam, b.o.User, b.o.SSHKeys, b.o.NTPServers, b.o.RootSize, b.o.Epoch.Unix())
	b.ids = h.Sum(nil)
	return nil
}

func (b *builder) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = b.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (b *builder) installDeb(ctx context.Context) error {
	// dpkg runs in the tree (dpkg --root would resolve the tree's
	// statoverride groups, like _chrony, against this host's); the
	// postinst sees no running systemd and only enables the units.
	tmp := "var/tmp/" + filepath.Base(b.o.Deb)
	if err := b.run(ctx, "cp", b.o.Deb, b.path(tmp)); err != nil {
		return err
	}
	defer os.Remove(b.path(tmp))
	return b.run(ctx, "chroot", b.root, "dpkg", "-i", "/"+tmp)
}

func (b *builder) path(p string) string { return filepath.Join(b.root, p) }

func (b *builder) write(p string, data string, mode os.FileMode) error {
	full := b.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	os.Remove(full)
	return os.WriteFile(full, []byte(data), mode)
}

func (b *builder) configure(ctx context.Context) error {
	// The installer's own files.
	err := fs.WalkDir(files, "files", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		return b.write(strings.TrimPrefix(p, "files/"), string(data), 0o644)
	})
	if err != nil {
		return err
	}
	ipam, err := json.MarshalIndent(b.o.IPAM, "", "  ")
	if err != nil {
		return err
	}
	b.layout = NewLayout(ESPSize, 0, b.ids) // identifiers; sizes come later
	ntp := "# chrony's servers, from the image's build (docs/installer.md).\n"
	for _, s := range b.o.NTPServers {
		ntp += "server " + s + " iburst\n"
	}
	fstab := fmt.Sprintf("# The image's partitions (docs/installer.md).\nPARTUUID=%s / ext4 errors=remount-ro,x-systemd.growfs 0 1\nPARTUUID=%s /boot/efi vfat umask=0077,nofail,x-systemd.device-timeout=5min 0 2\n",
		b.layout.RootUUID, b.layout.ESPUUID)
	for _, f := range []struct {
		path, data string
		mode       os.FileMode
	}{
		{"etc/neco/ipam.json", string(ipam) + "\n", 0o644},
		{"etc/fstab", fstab, 0o644},
		{"etc/hostname", "localhost\n", 0o644},
		{"etc/sudoers.d/" + b.o.User, b.o.User + " ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440},
		// The vdc's console autologin is not for a real server.
		{"etc/securetty", "console\nttyS0\ntty1\n", 0o644},
	} {
		if err := b.write(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	if len(b.o.NTPServers) > 0 {
		if err := b.write("etc/chrony/sources.d/neco.sources", ntp, 0o644); err != nil {
			return err
		}
		// Only the site's servers: the Debian pool is not reachable from a
		// data center.
		conf, err := os.ReadFile(b.path("etc/chrony/chrony.conf"))
		if err != nil {
			return err
		}
		var keep []string
		for _, l := range strings.Split(string(conf), "\n") {
			if !strings.HasPrefix(l, "pool ") {
				keep = append(keep, l)
			}
		}
		if err := b.write("etc/chrony/chrony.conf", strings.Join(keep, "\n"), 0o644); err != nil {
			return err
		}
	}
	for _, p := range []string{"etc/systemd/system/console-getty.service.d/autologin.conf"} {
		if err := os.Remove(b.path(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// root: no password at all (the tree's is empty, for vdc consoles).
	if err := b.run(ctx, "usermod", "--root", b.root, "--password", "*", "root"); err != nil {
		return err
	}
	if err := b.run(ctx, "useradd", "--root", b.root, "--create-home", "--shell", "/bin/bash", "--groups", "sudo", b.o.User); err != nil {
		return err
	}
	home := b.path(filepath.Join("home", b.o.User))
	uid, gid, err := owner(home)
	if err != nil {
		return err
	}
	keys := strings.Join(b.o.SSHKeys, "\n")
	if keys != "" {
		keys += "\n"
	}
	if err := b.write(filepath.Join("home", b.o.User, ".ssh/authorized_keys"), keys, 0o600); err != nil {
		return err
	}
	for _, p := range []string{".ssh", ".ssh/authorized_keys"} {
		if err := os.Lchown(filepath.Join(home, p), uid, gid); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(home, ".ssh"), 0o700); err != nil {
		return err
	}
	// The agent runs its own BIRD.
	if err := b.run(ctx, "systemctl", "--root="+b.root, "--quiet", "mask", "bird.service"); err != nil {
		return err
	}
	if err := b.run(ctx, "systemctl", "--root="+b.root, "--quiet", "enable", "neco-identity.service", "bgp-node-agent.service", "chrony.service", "ssh.service"); err != nil {
		return err
	}
	// What must differ between servers, or between builds: made at first
	// boot instead.
	var drop []string
	for _, g := range []string{"etc/ssh/ssh_host_*", "var/lib/dbus/machine-id", "var/log/*.log", "var/log/apt/*", "var/cache/apt/*.bin",
		"var/lib/apt/lists/*_*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "etc/*-", "var/cache/ldconfig/aux-cache"} {
		m, _ := filepath.Glob(b.path(g))
		drop = append(drop, m...)
	}
	for _, p := range drop {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := b.write("etc/machine-id", "", 0o444); err != nil {
		return err
	}
	kernels, _ := filepath.Glob(b.path("boot/vmlinuz-*"))
	slices.Sort(kernels)
	if len(kernels) == 0 {
		return errors.New("the tree has no kernel (linux-image-amd64)")
	}
	b.kernel = strings.TrimPrefix(filepath.Base(kernels[len(kernels)-1]), "vmlinuz-")
	for _, p := range []string{"boot/initrd.img-" + b.kernel, "usr/lib/systemd/boot/efi/systemd-bootx64.efi"} {
		if _, err := os.Stat(b.path(p)); err != nil {
			return fmt.Errorf("the tree lacks %s", p)
		}
	}
	return os.MkdirAll(b.path("boot/efi"), 0o755)
}

func owner(p string) (int, int, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return 0, 0, err
	}
	return int(st.Uid), int(st.Gid), nil
}

// clampTimes sets every time under dir later than t to t: files made by
// this build or by the tree's (debootstrap's scripts) get the same times
// from build to build; files from packages keep theirs.
func clampTimes(dir string, t time.Time) error {
	epoch := unix.NsecToTimespec(t.UnixNano())
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		ts := []unix.Timespec{st.Atim, st.Mtim}
		changed := false
		for i := range ts {
			if ts[i].Nano() > epoch.Nano() {
				ts[i], changed = epoch, true
			}
		}
		if !changed {
			return nil
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// treeSize is the space the tree takes, in bytes, and its inode count.
func treeSize(root string) (int64, int64, error) {
	var size, inodes int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		inodes++
		size += (st.Size + 4095) / 4096 * 4096
		return nil
	})
	return size, inodes, err
}

func (b *builder) rootFS(ctx context.Context) error {
	size, inodes, err := treeSize(b.root)
	if err != nil {
		return err
	}
	rootSize := b.o.RootSize
	if rootSize == 0 {
		rootSize = size + size/4 + 128*mib
	}
	if rootSize < size+size/10 {
		return fmt.Errorf("root size %d MiB is less than the tree's %d MiB and a tenth", rootSize/mib, size/mib)
	}
	b.layout = NewLayout(ESPSize, rootSize, b.ids)
	b.rootImg = filepath.Join(b.work, "root.img")
	// E2FSPROGS_FAKE_TIME fixes the superblock's and the inodes' times;
	// the UUID and the directory hash seed come from the inputs.
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "neco-root", "-U", b.layout.FSUUID,
		"-E", "hash_seed="+b.layout.FSUUID+",root_owner=0:0,lazy_itable_init=0,nodiscard",
		"-N", strconv.FormatInt(inodes*2+16384, 10), "-d", b.root, b.rootImg, strconv.FormatInt(b.layout.RootSize/1024, 10)+"k")
	cmd.Env = append(b.env, "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(b.o.Epoch.Unix(), 10))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4: %w\n%s", err, out)
	}
	return b.fixCtimes(ctx)
}

// fixCtimes sets the change and access times of every inode in use to
// the epoch: mkfs.ext4 -d copies each file's ctime, which is when this
// build made or copied it and cannot be set on the tree, and its atime,
// which reading the tree (relatime) moves after the clamp.
func (b *builder) fixCtimes(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "dumpe2fs", b.rootImg).Output()
	if err != nil {
		return fmt.Errorf("dumpe2fs: %w", err)
	}
	used, err := UsedInodes(string(out))
	if err != nil {
		return err
	}
	var script strings.Builder
	at := "@" + strconv.FormatInt(b.o.Epoch.Unix(), 10)
	for _, ino := range used {
		if ino == 2 || ino > 10 { // the root directory and every file; not the other reserved inodes
			fmt.Fprintf(&script, "sif <%d> ctime %s\nsif <%d> atime %s\n", ino, at, ino, at)
		}
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", b.rootImg)
	cmd.Stdin = strings.NewReader(script.String())
	cmd.Env = append(b.env, "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(b.o.Epoch.Unix(), 10))
	out, err = cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("debugfs: %w\n%s", err, out)
	}
	return nil
}

var reGroup = regexp.MustCompile(`^Group ([0-9]+): `)

// UsedInodes reads dumpe2fs's output: the inodes of each group that are
// not in its free ranges.
func UsedInodes(dump string) ([]uint64, error) {
	var perGroup uint64
	var used []uint64
	group := -1
	for _, line := range strings.Split(dump, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "Inodes per group:"):
			n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(t, "Inodes per group:")), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("dumpe2fs: %q", t)
			}
			perGroup = n
		case reGroup.MatchString(t):
			n, _ := strconv.Atoi(reGroup.FindStringSubmatch(t)[1])
			group = n
		case strings.HasPrefix(t, "Free inodes:") && group >= 0:
			if perGroup == 0 {
				return nil, errors.New("dumpe2fs: no inodes per group before the groups")
			}
			first, last := uint64(group)*perGroup+1, uint64(group+1)*perGroup
			free := map[uint64]bool{}
			for _, r := range strings.Split(strings.TrimSpace(strings.TrimPrefix(t, "Free inodes:")), ",") {
				r = strings.TrimSpace(r)
				if r == "" {
					continue
				}
				a, z, isRange := strings.Cut(r, "-")
				lo, err1 := strconv.ParseUint(a, 10, 64)
				hi := lo
				var err2 error
				if isRange {
					hi, err2 = strconv.ParseUint(z, 10, 64)
				}
				if err1 != nil || err2 != nil || lo < first || hi > last || lo > hi {
					return nil, fmt.Errorf("dumpe2fs: group %d: free inodes %q", group, r)
				}
				if hi-lo+1 == perGroup {
					free = nil // the whole group
					break
				}
				for i := lo; i <= hi; i++ {
					free[i] = true
				}
			}
			if free == nil {
				continue
			}
			for i := first; i <= last; i++ {
				if !free[i] {
					used = append(used, i)
				}
			}
		}
	}
	if perGroup == 0 || group < 0 {
		return nil, errors.New("dumpe2fs: no groups in the output")
	}
	return used, nil
}

// BootEntry is systemd-boot's entry for the image's kernel.
func BootEntry(kernel, rootUUID string) string {
	return fmt.Sprintf(`title   neco boot server (Debian, Linux %s)
linux   /vmlinuz
initrd  /initrd.img
options root=PARTUUID=%s ro rootwait console=tty0 console=ttyS0,115200 net.ifnames=0
`, kernel, rootUUID)
}

// SeedExample is the ESP's neco/seed.yml.example.
const SeedExample = `# The identity of this boot server, read once at its first boot
# (docs/installer.md). Copy this file to seed.yml beside it and edit it.
# The kernel command line's neco.rack=, neco.index=, neco.serial= and
# neco.hostname= win over this file; the serial defaults to the SMBIOS
# system serial number.
rack: 0
# index-in-rack: 3          # the IPAM's node-index-offset when unset
# serial: ABC123            # SMBIOS when unset
# hostname: boot-0          # boot-<rack> when unset
# ssh-authorized-keys:
#   - ssh-ed25519 AAAA... operator@example
`

func (b *builder) esp(ctx context.Context) error {
	b.espImg = filepath.Join(b.work, "esp.img")
	if err := b.run(ctx, "mkfs.vfat", "-C", "--invariant", "-F", "32", "-i", b.layout.VolumeID, "-n", "NECO-ESP", b.espImg,
		strconv.FormatInt(b.layout.ESPSize/1024, 10)); err != nil {
		return err
	}
	stage := filepath.Join(b.work, "esp")
	entry := BootEntry(b.kernel, b.layout.RootUUID)
	put := []struct{ src, dst, data string }{
		{src: b.path("usr/lib/systemd/boot/efi/systemd-bootx64.efi"), dst: "EFI/BOOT/BOOTX64.EFI"},
		{src: b.path("boot/vmlinuz-" + b.kernel), dst: "vmlinuz"},
		{src: b.path("boot/initrd.img-" + b.kernel), dst: "initrd.img"},
		{dst: "loader/loader.conf", data: "default neco.conf\ntimeout 3\neditor yes\n"},
		{dst: "loader/entries/neco.conf", data: entry},
		{dst: "neco/seed.yml.example", data: SeedExample},
	}
	for _, f := range put {
		p := filepath.Join(stage, f.dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if f.src != "" {
			if err := b.run(ctx, "cp", f.src, p); err != nil {
				return err
			}
		} else if err := os.WriteFile(p, []byte(f.data), 0o644); err != nil {
			return err
		}
	}
	if err := clampTimes(stage, b.o.Epoch); err != nil {
		return err
	}
	// mcopy -s copies the directories; -m keeps the (clamped) times.
	args := []string{"-i", b.espImg, "-s", "-m", "-Q"}
	for _, d := range []string{"EFI", "loader", "neco", "vmlinuz", "initrd.img"} {
		args = append(args, filepath.Join(stage, d))
	}
	return b.run(ctx, "mcopy", append(args, "::/")...)
}

func (b *builder) disk(ctx context.Context) error {
	b.image = filepath.Join(b.work, "disk.img")
	f, err := os.Create(b.image)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(b.layout.Size); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", b.image)
	cmd.Stdin = strings.NewReader(b.layout.SfdiskScript())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %w\n%s", err, out)
	}
	if err := copyInto(f, b.layout.ESPStart, b.layout.ESPSize, b.espImg); err != nil {
		return err
	}
	if err := copyInto(f, b.layout.RootStart, b.layout.RootSize, b.rootImg); err != nil {
		return err
	}
	return f.Sync()
}

// digest returns a file's SHA-256 and the bytes it occupies on disk.
func digest(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", 0, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), st.Blocks * 512, nil
}
