package script

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge says a script is larger than the limit.
var ErrTooLarge = errors.New("larger than the limit")

// ReadFile reads a script of at most max bytes (0: DefaultMaxSize). It
// refuses what is not a regular file (a device such as /dev/zero, a FIFO,
// a socket) before opening it, and reads no more than max+1 bytes, so
// that no input can make it block or take memory without end. Errors name
// the file.
func ReadFile(name string, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxSize
	}
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s): a script must be a file", SafeName(name), kindOf(st.Mode()))
	}
	if st.Size() > int64(max) {
		return nil, fmt.Errorf("%s: %w of %d bytes (--max-script-size): the file has %d", SafeName(name), ErrTooLarge, max, st.Size())
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file may have changed since Stat: check again what was opened.
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: a script must be a file", SafeName(name))
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SafeName(name), err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("%s: %w of %d bytes (--max-script-size)", SafeName(name), ErrTooLarge, max)
	}
	return b, nil
}

func kindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}
