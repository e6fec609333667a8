// Package kbframes reads testdata/kb172983-frames.txt: the seven Ethernet
// frames printed in Microsoft KB 172983, synprobe's reference exchange.
package kbframes

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"synprobe/probe/pcap"
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

// ReadFile parses the frames file at path and checks that it holds the
// seven frames of the article.
func ReadFile(path string) ([]Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	frames, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(frames) != 7 {
		return nil, fmt.Errorf("%s: %d frames, want the 7 of KB 172983", path, len(frames))
	}
	return frames, nil
}

// Pcap returns frames as a pcap capture, one millisecond apart.
func Pcap(frames []Frame) ([]byte, error) {
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, pcap.LinkTypeEthernet)
	if err != nil {
		return nil, err
	}
	base := time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC)
	for _, fr := range frames {
		if err := w.WritePacket(base.Add(time.Duration(fr.Number)*time.Millisecond), fr.Data); err != nil {
			return nil, err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
