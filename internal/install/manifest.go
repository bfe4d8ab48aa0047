package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Manifest records what Install wrote, so that re-runs and Uninstall can
// tell their own files from files an operator changed by hand. It holds no
// timestamps: an unchanged install leaves it byte for byte the same.
type Manifest struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
	// Dirs are the directories Install created (that did not exist).
	Dirs []string `json:"createdDirs,omitempty"`
}

// Entry is one installed path and the state Install left it in.
type Entry struct {
	Path   string   `json:"path"`
	Kind   Kind     `json:"kind"`
	Mode   fileMode `json:"mode,omitempty"`
	SHA256 string   `json:"sha256,omitempty"`
	Target string   `json:"target,omitempty"`
	// Adopted: the same content was there before the first install; an
	// uninstall leaves it.
	Adopted bool `json:"adopted,omitempty"`
	// Backup is where the different file that was there before is kept
	// (--force); an uninstall puts it back.
	Backup string `json:"backup,omitempty"`
}

// fileMode is a permission mode, written in octal ("0644").
type fileMode uint32

func (m fileMode) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf(`"%04o"`, uint32(m))), nil }

func (m *fileMode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return fmt.Errorf("mode %q: want octal digits", s)
	}
	*m = fileMode(v)
	return nil
}

func (m *Manifest) entry(path string) *Entry {
	for i := range m.Entries {
		if m.Entries[i].Path == path {
			return &m.Entries[i]
		}
	}
	return nil
}

func (m *Manifest) put(e Entry) {
	if old := m.entry(e.Path); old != nil {
		*old = e
		return
	}
	m.Entries = append(m.Entries, e)
}

func (m *Manifest) addDir(d string) {
	if !slices.Contains(m.Dirs, d) {
		m.Dirs = append(m.Dirs, d)
	}
}

// loadManifest reads the manifest at host path p; a missing one is empty.
func loadManifest(p string) (*Manifest, bool, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &Manifest{Version: 1}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read install manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, false, fmt.Errorf("install manifest %s is damaged (%v): restore it or remove it (an install then treats every file as foreign)", p, err)
	}
	if m.Version != 1 {
		return nil, false, fmt.Errorf("install manifest %s: version %d is not supported by this calico", p, m.Version)
	}
	return &m, true, nil
}

func (m *Manifest) encode() []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // plain values only
	}
	return append(b, '\n')
}

// state is what is at a path now (or what an item or entry wants there).
type state struct {
	exists bool
	kind   Kind
	mode   uint32
	sha256 string
	target string
	size   int64
}

func (s state) equal(o state) bool {
	if s.exists != o.exists || s.kind != o.kind {
		return false
	}
	if s.kind == KindSymlink {
		return s.target == o.target
	}
	return s.sha256 == o.sha256 && s.mode == o.mode
}

func (e *Entry) state() state {
	return state{exists: true, kind: e.Kind, mode: uint32(e.Mode), sha256: e.SHA256, target: e.Target}
}

// inspect reads the state of host path p. Anything but a regular file or
// a symlink there is an error.
func inspect(p string) (state, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return state{}, nil
	}
	if err != nil {
		return state{}, err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		return state{exists: true, kind: KindSymlink, target: t}, err
	case fi.Mode().IsRegular():
		sum, n, err := hashFile(p)
		return state{exists: true, kind: KindFile, mode: uint32(fi.Mode().Perm()), sha256: sum, size: n}, err
	default:
		return state{}, fmt.Errorf("%s is a %s, not a file or symlink: move it away", p, fi.Mode().Type())
	}
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func hashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// want is the state an item asks for.
func (it *Item) want() (state, error) {
	switch it.Kind {
	case KindSymlink:
		return state{exists: true, kind: KindSymlink, target: it.Target}, nil
	case KindFile:
		if it.Source != "" {
			sum, n, err := hashFile(it.Source)
			if err != nil {
				return state{}, fmt.Errorf("read the binary to install: %w", err)
			}
			return state{exists: true, kind: KindFile, mode: it.Mode, sha256: sum, size: n}, nil
		}
		return state{exists: true, kind: KindFile, mode: it.Mode, sha256: hashBytes(it.Data), size: int64(len(it.Data))}, nil
	}
	return state{}, fmt.Errorf("%s: unknown kind %q", it.Path, it.Kind)
}

// writeAtomic writes a file through a temporary file in the same directory
// and a rename, so readers see the old or the new file, never a part; a
// running binary keeps its old inode.
func writeAtomic(p string, mode uint32, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(fs.FileMode(mode)); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// symlinkAtomic points p at target through a temporary link and a rename.
func symlinkAtomic(target, p string) error {
	tmp := filepath.Join(filepath.Dir(p), fmt.Sprintf(".%s.tmp-%d", filepath.Base(p), os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
