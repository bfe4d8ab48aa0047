package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Options say where and how to install.
type Options struct {
	Root     string // every path is put under it ("/" on a real node)
	Manifest string // target path of the manifest, e.g. /var/lib/calico/install-manifest.json
	DryRun   bool   // print what would change; write nothing
	Force    bool   // replace foreign files (kept as backups) and hand edits
	Out      io.Writer
}

// host is the host path of target path p.
func (o *Options) host(p string) string { return filepath.Join(o.Root, p) }

// backupPath is where a foreign file at target path p is kept.
func (o *Options) backupPath(p string) string {
	return filepath.Join(filepath.Dir(o.Manifest), "install-backup", p)
}

// Verbs of the report, one line per path.
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
	Kept      = "kept"
	Replaced  = "replaced"
	Removed   = "removed"
	Restored  = "restored"
	Left      = "left"
	Gone      = "gone"
)

// step is the decision for one item.
type step struct {
	item  Item
	cur   state
	want  state
	entry *Entry
	verb  string
	note  string
}

// Install puts items under o.Root. It decides every path first and fails,
// writing nothing, if one holds a foreign file (unless o.Force). A path
// changed by hand since the last install is kept. It prints one report
// line per path to o.Out (in a dry run: what would change, with content or
// a diff).
func Install(items []Item, o Options) error {
	m, _, err := loadManifest(o.host(o.Manifest))
	if err != nil {
		return err
	}
	steps, err := plan(items, m, o)
	if err != nil {
		return err
	}
	if o.DryRun {
		for _, s := range steps {
			dryRunStep(o.Out, s, o)
		}
		return dropStale(items, m, o)
	}
	var errs []error
	for _, s := range steps {
		note, err := apply(s, m, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("install %s: %w", s.item.Path, err))
			break
		}
		fmt.Fprintf(o.Out, "%-9s %s%s\n", s.verb, s.item.Path, note)
	}
	if len(errs) == 0 {
		if err := dropStale(items, m, o); err != nil {
			errs = append(errs, err)
		}
	}
	// Record what was done even after a failure, so --uninstall undoes it.
	if err := saveManifest(m, o); err != nil {
		errs = append(errs, err)
	}
	return joinLine(errs)
}

// joinLine joins errors into one line ("; "), keeping them for errors.Is.
func joinLine(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return lineError{errors.Join(errs...)}
}

type lineError struct{ error }

func (e lineError) Error() string { return strings.ReplaceAll(e.error.Error(), "\n", "; ") }
func (e lineError) Unwrap() error { return e.error }

// dropStale removes what an earlier install wrote and this one no longer
// does (another conflist name, no portmap link), as Uninstall would, and
// forgets it: a stale file changed by hand is kept and no longer managed.
func dropStale(items []Item, m *Manifest, o Options) error {
	want := map[string]bool{}
	for _, it := range items {
		want[it.Path] = true
	}
	would := ""
	if o.DryRun {
		would = "would be "
	}
	var keep []Entry
	var errs []error
	for _, e := range m.Entries {
		if want[e.Path] {
			keep = append(keep, e)
			continue
		}
		verb, note, err := uninstallEntry(e, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", e.Path, err))
			keep = append(keep, e)
			continue
		}
		fmt.Fprintf(o.Out, "%-9s %s%s (no longer installed)\n", would+verb, e.Path, note)
	}
	if !o.DryRun {
		m.Entries = keep
	}
	return joinLine(errs)
}

// plan decides every item without writing anything.
func plan(items []Item, m *Manifest, o Options) ([]step, error) {
	var steps []step
	var foreign []string
	for _, it := range items {
		cur, err := inspect(o.host(it.Path))
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("cannot install %s: %v (something is in the way)", it.Path, err)
		}
		want, err := it.want()
		if err != nil {
			return nil, err
		}
		s := step{item: it, cur: cur, want: want, entry: m.entry(it.Path)}
		switch {
		case cur.equal(want):
			s.verb = Unchanged
		case !cur.exists:
			s.verb = Created
		case s.entry != nil && cur.equal(s.entry.state()) && !s.entry.Adopted:
			s.verb = Updated
		case s.entry != nil && !cur.equal(s.entry.state()):
			s.verb, s.note = Kept, " (changed by hand since calico install wrote it; --force overwrites it)"
			if o.Force {
				s.verb, s.note = Updated, " (hand edit overwritten: --force)"
			}
		default: // foreign, or adopted and now to change
			s.verb = Replaced
			if s.entry == nil && !o.Force {
				foreign = append(foreign, it.Path)
			}
		}
		steps = append(steps, s)
	}
	if len(foreign) > 0 {
		more := ""
		if len(foreign) > 1 {
			more = fmt.Sprintf(" (and %d more: %s)", len(foreign)-1, strings.Join(foreign[1:], ", "))
		}
		return nil, fmt.Errorf("%s exists and was not written by calico install%s: move it away, or pass --force to replace it (kept, and put back by --uninstall)", foreign[0], more)
	}
	return steps, nil
}

// apply carries out one step and records it in m. It returns the note of
// the report line.
func apply(s step, m *Manifest, o Options) (string, error) {
	it := s.item
	e := Entry{Path: it.Path, Kind: it.Kind, Mode: fileMode(s.want.mode), SHA256: s.want.sha256, Target: s.want.target}
	if s.entry != nil {
		e.Backup, e.Adopted = s.entry.Backup, s.entry.Adopted
	}
	switch s.verb {
	case Kept:
		return s.note, nil // the manifest keeps what we wrote, so uninstall keeps the edit
	case Unchanged:
		if s.entry == nil {
			e.Adopted = true
		}
		m.put(e)
		return "", nil
	case Replaced:
		b := o.backupPath(it.Path)
		if err := mkdirAll(filepath.Dir(b), m, o); err != nil {
			return "", err
		}
		if err := os.Rename(o.host(it.Path), o.host(b)); err != nil {
			return "", fmt.Errorf("keep the previous file: %w", err)
		}
		e.Backup, e.Adopted = b, false
		s.note = " (the previous one is kept at " + b + ")"
	}
	if err := mkdirAll(filepath.Dir(it.Path), m, o); err != nil {
		return "", err
	}
	if err := write(it, o.host(it.Path)); err != nil {
		return "", err
	}
	m.put(e)
	return s.note, nil
}

func write(it Item, p string) error {
	if it.Kind == KindSymlink {
		return symlinkAtomic(it.Target, p)
	}
	return writeAtomic(p, it.Mode, func(w io.Writer) error {
		if it.Source == "" {
			_, err := w.Write(it.Data)
			return err
		}
		f, err := os.Open(it.Source)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// mkdirAll creates target directory d and its missing parents, recording
// each one it creates.
func mkdirAll(d string, m *Manifest, o Options) error {
	if d == "/" || d == "." {
		return nil
	}
	fi, err := os.Stat(o.host(d))
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", d)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := mkdirAll(filepath.Dir(d), m, o); err != nil {
		return err
	}
	if err := os.Mkdir(o.host(d), 0o755); err != nil {
		return err
	}
	m.addDir(d)
	return nil
}

func saveManifest(m *Manifest, o Options) error {
	if err := mkdirAll(filepath.Dir(o.Manifest), m, o); err != nil {
		return fmt.Errorf("write install manifest: %w", err)
	}
	b := m.encode()
	p := o.host(o.Manifest)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := writeAtomic(p, 0o644, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return fmt.Errorf("write install manifest: %w", err)
	}
	return nil
}

// Uninstall removes what the manifest says Install wrote and is unchanged
// since, puts back files Install replaced, keeps (and reports) files
// changed by hand, then removes the directories Install created if they
// are empty, and the manifest. Without a manifest it returns
// ErrNothingInstalled.
func Uninstall(o Options) error {
	m, ok, err := loadManifest(o.host(o.Manifest))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w under %s: no manifest at %s", ErrNothingInstalled, o.Root, o.Manifest)
	}
	would := ""
	if o.DryRun {
		would = "would be "
	}
	var errs []error
	for i := len(m.Entries) - 1; i >= 0; i-- {
		e := m.Entries[i]
		verb, note, err := uninstallEntry(e, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("uninstall %s: %w", e.Path, err))
			continue
		}
		fmt.Fprintf(o.Out, "%-9s %s%s\n", would+verb, e.Path, note)
	}
	if o.DryRun || len(errs) > 0 {
		return joinLine(errs)
	}
	if err := os.Remove(o.host(o.Manifest)); err != nil {
		return fmt.Errorf("remove install manifest: %w", err)
	}
	dirs := append([]string(nil), m.Dirs...)
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := os.Remove(o.host(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(o.Out, "%-9s %s/ (not empty)\n", Kept, d)
		}
	}
	return nil
}

func uninstallEntry(e Entry, o Options) (verb, note string, err error) {
	cur, err := inspect(o.host(e.Path))
	if err != nil {
		return "", "", err
	}
	switch {
	case cur.exists && !cur.equal(e.state()):
		note = " (changed by hand since calico install wrote it)"
		if e.Backup != "" {
			note += "; the file it replaced is at " + e.Backup
		}
		return Kept, note, nil
	case cur.exists && e.Adopted:
		return Left, " (it was there before calico install)", nil
	}
	if !o.DryRun && cur.exists {
		if err := os.Remove(o.host(e.Path)); err != nil {
			return "", "", err
		}
	}
	verb = Removed
	if !cur.exists {
		verb = Gone
	}
	if e.Backup != "" {
		if !o.DryRun {
			if err := os.Rename(o.host(e.Backup), o.host(e.Path)); err != nil {
				return "", "", fmt.Errorf("put back %s: %w", e.Backup, err)
			}
		}
		return Restored, " (the file that was there before, from " + e.Backup + ")", nil
	}
	return verb, "", nil
}
