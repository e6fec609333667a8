// Package kbframes reads testdata/kb172983-frames.txt: the seven Ethernet
// frames printed in Microsoft KB 172983, synprobe's reference exchange.
package kbframes

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Frame is one frame of the file.
type Frame struct {
	Number      int
	Description string
	Data        []byte
}

// Parse reads the file's format: comment lines starting with '#', a line
// "frame N: description", then the frame as hex bytes separated by spaces.
func Parse(r io.Reader) ([]Frame, error) {
	var frames []Frame
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(text, "frame "); ok {
			var n int
			num, desc, _ := strings.Cut(rest, ":")
			if _, err := fmt.Sscanf(num, "%d", &n); err != nil {
				return nil, fmt.Errorf("line %d: bad frame number %q", line, num)
			}
			frames = append(frames, Frame{Number: n, Description: strings.TrimSpace(desc)})
			continue
		}
		if len(frames) == 0 {
			return nil, fmt.Errorf("line %d: bytes before the first 'frame N:' line", line)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(text, " ", ""))
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		f := &frames[len(frames)-1]
		f.Data = append(f.Data, b...)
	}
	return frames, sc.Err()
}
