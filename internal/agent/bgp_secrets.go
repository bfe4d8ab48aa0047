package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BGP password secrets are files laid out like a mounted Kubernetes
// Secret: <dir>/<secret name>/<key>. Kubernetes updates such a mount by
// writing a new timestamped directory and renaming the "..data" symlink
// over the old one, so the key files (symlinks through ..data) change
// without an event on the files themselves. The watcher therefore
// watches <dir> and every <dir>/<secret> directory: a rename, create,
// delete, write or attribute change of any entry wakes the BGP goroutine,
// which re-reads the secrets it uses (bgp.Calc) and changes only the
// sessions whose password changed.

// secretEvents are the inotify events that can change a secret's value.
const secretEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM |
	unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// secretWatcher watches a secret directory with inotify.
type secretWatcher struct {
	dir  string
	fd   int      // the inotify descriptor (never f.Fd(): that makes it blocking)
	f    *os.File // fd, non-blocking, read through Go's poller
	kick func()
	log  *slog.Logger

	mu  sync.Mutex
	wds map[int32]string // watch descriptor -> directory
}

// watchSecrets starts watching dir; kick is called after every change.
// It fails when inotify is unavailable or dir does not exist (the caller
// then polls). The watcher stops when ctx ends.
func watchSecrets(ctx context.Context, dir string, log *slog.Logger, kick func()) (*secretWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify init: %w", err)
	}
	w := &secretWatcher{dir: dir, fd: fd, f: os.NewFile(uintptr(fd), "inotify"), kick: kick, log: log, wds: map[int32]string{}}
	if err := w.add(dir); err != nil {
		w.f.Close()
		return nil, err
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		w.addIfDir(filepath.Join(dir, e.Name()))
	}
	go func() {
		<-ctx.Done()
		w.f.Close()
	}()
	go w.run()
	return w, nil
}

func (w *secretWatcher) add(dir string) error {
	wd, err := unix.InotifyAddWatch(w.fd, dir, secretEvents|unix.IN_ONLYDIR)
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	w.mu.Lock()
	w.wds[int32(wd)] = dir
	w.mu.Unlock()
	return nil
}

// addIfDir watches a secret directory (not the ..data links or the
// timestamped directories inside one: their changes show as renames in
// the secret directory itself).
func (w *secretWatcher) addIfDir(path string) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		if err := w.add(path); err != nil {
			w.log.Warn("BGP secret directory not watched", "component", "bgp", "err", err)
		}
	}
}

// run reads events until the descriptor is closed.
func (w *secretWatcher) run() {
	buf := make([]byte, 16*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, fs.ErrClosed) && !errors.Is(err, os.ErrClosed) {
				w.log.Warn("BGP secret watch ended", "component", "bgp", "err", err)
			}
			return
		}
		w.handle(buf[:n])
		w.kick()
	}
}

// handle watches new secret directories and forgets removed ones.
func (w *secretWatcher) handle(b []byte) {
	for off := 0; off+unix.SizeofInotifyEvent <= len(b); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[off]))
		name := b[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
		off += unix.SizeofInotifyEvent + int(ev.Len)
		w.mu.Lock()
		parent, ok := w.wds[ev.Wd]
		if ev.Mask&unix.IN_IGNORED != 0 {
			delete(w.wds, ev.Wd)
		}
		w.mu.Unlock()
		if ok && parent == w.dir && ev.Mask&unix.IN_ISDIR != 0 && ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
			w.addIfDir(filepath.Join(w.dir, cString(name)))
		}
	}
}

// close stops the watcher.
func (w *secretWatcher) close() { _ = w.f.Close() }

// watching reports whether the secret directory itself is still watched.
func (w *secretWatcher) watching() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.wds {
		if d == w.dir {
			return true
		}
	}
	return false
}

// cString is a NUL-padded inotify name as a string.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
